set terminal pngcairo size 1000,640 font 'sans,11'
set termoption noenhanced
set output 'engines.png'
set title "VGG16 engine-only img/s, 2 threads (2026-12-07)"
set xlabel 'batch size'
set ylabel 'images / second (median; bars: slowest..fastest pass)'
set logscale x 2
set xrange [5.714285714285714:11.2]
set xtics (8)
set yrange [0:*]
set grid
set key outside right top
plot 'plot.dat' index 0 using 1:2:3:4 with yerrorlines lw 2 pt 7 title "onnxruntime", 'plot.dat' index 1 using 1:2:3:4 with yerrorlines lw 2 pt 7 title "vggserve f32 direct", 'plot.dat' index 2 using 1:2:3:4 with yerrorlines lw 2 pt 7 title "vggserve f32 winograd", 'plot.dat' index 3 using 1:2:3:4 with yerrorlines lw 2 pt 7 title "vggserve bf16 direct", 'plot.dat' index 4 using 1:2:3:4 with yerrorlines lw 2 pt 7 title "vggserve int8 direct", 'plot.dat' index 5 using 1:2:3:4 with yerrorlines lw 2 pt 7 title "vggserve int8 auto"
