#!/usr/bin/env python3
"""tritonclient_grpc_check.py - Triton's own, unmodified tritonclient.grpc against vggserve's
gRPC listener, each answer compared with tritonclient.http's answer to the same call on the
HTTP listener of the same server (issue 27, "What it must show").

    PYTHONPATH=DIR_WITH_tritonclient /usr/bin/python3 bench/tritonclient_grpc_check.py \
        --http 127.0.0.1:8080 --grpc 127.0.0.1:8001 --model vgg11 --binary build/vggserve

Run by bench/tritonclient_grpc_check.sh, which builds the tritonclient package from Triton's
client and common repositories and starts the server. Checked, for the model and its views
(M, M_image, M_tensor):
- live, ready, model ready; server metadata, model metadata, model config, repository index,
  statistics (one model and all): the HTTP JSON parsed into Triton's own protobuf message
  (unknown fields refused) equals the gRPC answer;
- FP32 inference at batch 1 and 8 (`vggserve preprocess` of the test photos): outputs equal
  byte for byte, shapes, datatypes, model name, version and id equal; classification too;
- BYTES photos with classification (shapes [N] and [N,1]): equal strings, each
  "score:index:label" with the label the model's labels give that index;
- the same calls by async_infer, with gzip and deflate message compression, and on one
  stream (start_stream / async_stream_infer, as image_client.py --streaming): equal answers;
- errors: an unknown model or version (metadata, config, statistics, infer) and a wrong shape
  give the same message, NOT_FOUND for 404 and INVALID_ARGUMENT for 400; on the stream the
  same message; is_model_ready says False for an unknown model or version by both clients;
  load_model and unload_model are refused alike (the model set is fixed).
Prints one line per check and exits 1 on the first mismatch.

    ... tritonclient_grpc_check.py --labels-from HOST:PORT --model M \
        --image-client-output FILE --batch B --classes C --images N [--same-as FILE2]
    ... tritonclient_grpc_check.py --labels-from HOST:PORT --model M \
        --ensemble-output FILE --classes C --images N [--same-as FILE2]

check what Triton's image_client.py / ensemble_image_client.py printed (FILE): PASS, one
"Request I, batch size B" per request (ceil(N/B), ids 1.., any order) with B*C class lines,
or one block per image with C lines; every line "score (index) = label" with the label the
model's labels give that index. --same-as: FILE2 (the same client by another path: the
stream, HTTP) printed the same answers."""
import argparse
import json
import os
import queue
import re
import subprocess
import sys
import tempfile
import urllib.request
from functools import partial

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from google.protobuf import json_format
from tritonclient.utils import InferenceServerException

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PHOTOS = os.path.join(ROOT, "tests", "data", "images")
STATUS_OF = {"404": "StatusCode.NOT_FOUND", "400": "StatusCode.INVALID_ARGUMENT"}

checks = 0


def check(ok, what, detail=""):
    global checks
    if not ok:
        print("FAIL  %s%s" % (what, ("\n      " + detail) if detail else ""))
        sys.exit(1)
    checks += 1
    print("ok    %s" % what)


def same_message(http_json, grpc_msg, what):
    """The HTTP JSON as Triton's protobuf message (json_format refuses unknown fields) equals
    the gRPC answer."""
    try:
        parsed = json_format.ParseDict(http_json, type(grpc_msg)())
    except json_format.ParseError as e:
        check(False, what, "HTTP JSON is not a %s: %s\n      %s"
              % (type(grpc_msg).__name__, e, json.dumps(http_json)[:600]))
    check(parsed == grpc_msg, what, "HTTP: %s\n      gRPC: %s" % (
        json_format.MessageToJson(parsed, indent=None)[:900],
        json_format.MessageToJson(grpc_msg, indent=None)[:900]))


def both_fail(call_http, call_grpc, what):
    """Both calls raise InferenceServerException: same message, gRPC code for the HTTP one."""
    errs = []
    for call in (call_http, call_grpc):
        try:
            call()
            errs.append(None)
        except InferenceServerException as e:
            errs.append(e)
    h, g = errs
    check(h is not None and g is not None, what + ": both refused",
          "HTTP: %r, gRPC: %r" % (h, g))
    check(STATUS_OF.get(h.status()) == g.status(), what + ": %s <-> %s" % (h.status(), g.status()),
          "HTTP status %s, gRPC status %s" % (h.status(), g.status()))
    check(h.message() == g.message(), what + ": same message (%r)" % g.message(),
          "HTTP: %r\n      gRPC: %r" % (h.message(), g.message()))


def infer_both(hc, gc, model, name, datatype, data, outputs, request_id):
    """One infer call by each client; returns (http_result, grpc_result)."""
    hi = httpclient.InferInput(name, list(data.shape), datatype)
    hi.set_data_from_numpy(data, binary_data=True)
    gi = grpcclient.InferInput(name, list(data.shape), datatype)
    gi.set_data_from_numpy(data)
    ho = [httpclient.InferRequestedOutput(n, binary_data=True, class_count=k) for n, k in outputs]
    go = [grpcclient.InferRequestedOutput(n, class_count=k) for n, k in outputs]
    hr = hc.infer(model, [hi], outputs=ho, request_id=request_id)
    gr = gc.infer(model, [gi], outputs=go, request_id=request_id)
    return hr, gr


def same_result(hr, gr, outputs, what):
    """Response fields and every output equal (FP32 bytes, BYTES strings)."""
    h, g = hr.get_response(), gr.get_response()
    check((h["model_name"], h["model_version"], h.get("id", "")) ==
          (g.model_name, g.model_version, g.id),
          what + ": model %s version %s id %r" % (g.model_name, g.model_version, g.id),
          "HTTP %r / gRPC %r" % ((h["model_name"], h["model_version"], h.get("id")),
                                 (g.model_name, g.model_version, g.id)))
    for name, _ in outputs:
        ho, go = hr.get_output(name), gr.get_output(name)
        check(ho is not None and go is not None, what + ": output %s in both" % name)
        check((ho["datatype"], list(ho["shape"])) == (go.datatype, list(go.shape)),
              what + ": %s %s %s" % (name, go.datatype, list(go.shape)),
              "HTTP %s %s / gRPC %s %s" % (ho["datatype"], ho["shape"], go.datatype, go.shape))
        a, b = hr.as_numpy(name), gr.as_numpy(name)
        if a.dtype == np.object_:
            eq = a.shape == b.shape and all(x == y for x, y in zip(a.ravel(), b.ravel()))
        else:
            eq = a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
        check(eq, what + ": %s equal%s" % (name, "" if a.dtype == np.object_ else " byte for byte"),
              "HTTP %r\n      gRPC %r" % (a.ravel()[:4], b.ravel()[:4]))


def check_classes(result, name, labels, what):
    """Every classification string is score:index:label with the label of that index."""
    bad = []
    for s in result.as_numpy(name).ravel():
        s = s.decode() if isinstance(s, bytes) else s
        score, index, label = s.split(":", 2)
        if not (0 <= int(index) < len(labels) and labels[int(index)] == label
                and 0.0 <= float(score) <= 1.0):
            bad.append(s)
    first = result.as_numpy(name).ravel()[0]
    check(not bad, what + ": classes named by their labels (e.g. %r)" % first, "bad: %r" % bad)


def preprocess(binary, photos, workdir):
    """(N,3,224,224) float32: `vggserve preprocess` of each photo, stacked."""
    arrays = []
    for p in photos:
        out = os.path.join(workdir, os.path.basename(p) + ".npy")
        subprocess.run([binary, "preprocess", p, "--out", out], check=True,
                       stdout=subprocess.DEVNULL)
        arrays.append(np.load(out).astype(np.float32))
    return np.concatenate(arrays, axis=0)


def fetch_labels(http, model):
    labels = json.load(urllib.request.urlopen("http://%s/v2/models/%s/labels" % (http, model)))
    return labels["labels"] if isinstance(labels, dict) else labels


CLASS_LINE = re.compile(r"^ {4}(\d+(?:\.\d+)?(?:e-?\d+)?) \((\d+)\) = (.+)$")


def class_lines(lines, labels, what):
    """Every line "    score (index) = label" names the model's label of that index."""
    for line in lines:
        mo = CLASS_LINE.match(line)
        check(mo is not None, what + ": %r is a class line" % line)
        score, index, label = float(mo.group(1)), int(mo.group(2)), mo.group(3)
        check(0 <= index < len(labels) and labels[index] == label and 0 <= score <= 1,
              what + ": %r names class %d (%s)" % (line.strip(), index, labels[index]
                                                   if 0 <= index < len(labels) else "?"))


def image_client_blocks(path, batch, classes, images, labels):
    """{request id: its class lines} from image_client.py's output."""
    lines = open(path).read().splitlines()
    what = os.path.basename(path)
    check(lines and lines[-1] == "PASS", what + ": ends with PASS", "\n".join(lines[-5:]))
    blocks, current = {}, None
    for line in lines[:-1]:
        mo = re.match(r"^Request (\S+), batch size (\d+)$", line)
        if mo:
            check(int(mo.group(2)) == batch, what + ": %s" % line)
            current = blocks.setdefault(mo.group(1), [])
        else:
            check(current is not None, what + ": %r after a Request line" % line)
            current.append(line)
    want = [str(i) for i in range(1, -(-images // batch) + 1)]
    check(sorted(blocks, key=int) == want, what + ": requests %s" % ", ".join(want),
          "got %s" % sorted(blocks))
    for rid, block in blocks.items():
        check(len(block) == batch * classes, what + ": request %s has %d class lines"
              % (rid, batch * classes))
        class_lines(block, labels, what + " request " + rid)
    return blocks


def ensemble_blocks(path, classes, images, labels):
    """{file: its class lines} from ensemble_image_client.py's output."""
    lines = [l for l in open(path).read().splitlines() if l]
    what = os.path.basename(path)
    check(lines and lines[-1] == "PASS", what + ": ends with PASS", "\n".join(lines[-5:]))
    blocks, current = {}, None
    for line in lines[:-1]:
        if line.startswith('"') and line.endswith('":'):
            current = blocks.setdefault(os.path.basename(line[1:-2]), [])
        elif line == "  [probabilities]:":
            check(current is not None, what + ": output after a file")
        else:
            check(current is not None, what + ": %r after a file line" % line)
            current.append(line)
    check(len(blocks) == images, what + ": %d images answered (%s)"
          % (images, ", ".join(sorted(blocks))), "got %s" % sorted(blocks))
    for name, block in blocks.items():
        check(len(block) == classes, what + ": %s has %d class lines" % (name, classes))
        class_lines(block, labels, what + " " + name)
    return blocks


def check_client_output(args):
    labels = fetch_labels(args.labels_from, args.model)
    if args.image_client_output:
        got = image_client_blocks(args.image_client_output, args.batch, args.classes,
                                  args.images, labels)
        other = (image_client_blocks(args.same_as, args.batch, args.classes, args.images, labels)
                 if args.same_as else None)
    else:
        got = ensemble_blocks(args.ensemble_output, args.classes, args.images, labels)
        other = (ensemble_blocks(args.same_as, args.classes, args.images, labels)
                 if args.same_as else None)
    if other is not None:
        check(got == other, "%s printed what %s printed" % (
            os.path.basename(args.image_client_output or args.ensemble_output),
            os.path.basename(args.same_as)))
    print("PASS: %d checks" % checks)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--labels-from", help="HOST:PORT of the HTTP listener (output checks)")
    ap.add_argument("--image-client-output")
    ap.add_argument("--ensemble-output")
    ap.add_argument("--same-as")
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--classes", type=int, default=1)
    ap.add_argument("--images", type=int)
    ap.add_argument("--http", help="HOST:PORT of the HTTP listener")
    ap.add_argument("--grpc", help="HOST:PORT of the gRPC listener")
    ap.add_argument("--model", default="vgg11")
    ap.add_argument("--binary", default=os.path.join(ROOT, "build", "vggserve"),
                    help="vggserve, for `preprocess`")
    args = ap.parse_args()
    if args.image_client_output or args.ensemble_output:
        return check_client_output(args)
    if not (args.http and args.grpc):
        ap.error("--http and --grpc, or an output to check")
    m = args.model
    views = [m, m + "_image", m + "_tensor"]

    hc = httpclient.InferenceServerClient(args.http)
    gc = grpcclient.InferenceServerClient(args.grpc)
    labels = fetch_labels(args.http, m)
    check(len(labels) > 1 and all(isinstance(x, str) and x for x in labels),
          "labels: %d names (%s, ...)" % (len(labels), ", ".join(labels[:3])))

    # Health and documents.
    check(hc.is_server_live() is True and gc.is_server_live() is True, "server live: both True")
    check(hc.is_server_ready() is True and gc.is_server_ready() is True, "server ready: both True")
    for v in views:
        for ver in ("", "1"):
            check(hc.is_model_ready(v, ver) is True and gc.is_model_ready(v, ver) is True,
                  "model ready %s version %r: both True" % (v, ver))
    same_message(hc.get_server_metadata(), gc.get_server_metadata(), "server metadata")
    for v in views:
        for ver in ("", "1"):
            same_message(hc.get_model_metadata(v, ver), gc.get_model_metadata(v, ver),
                         "model metadata %s version %r" % (v, ver))
            same_message(hc.get_model_config(v, ver), gc.get_model_config(v, ver).config,
                         "model config %s version %r" % (v, ver))
    same_message({"models": hc.get_model_repository_index()}, gc.get_model_repository_index(),
                 "repository index")

    # Inference.
    with tempfile.TemporaryDirectory(prefix="tritonclient-check-") as tmp:
        photos = sorted(os.path.join(PHOTOS, f) for f in os.listdir(PHOTOS))[:8]
        tensors = preprocess(args.binary, photos, tmp)
    check(tensors.shape == (8, 3, 224, 224), "tensors: %s from %d photos" % (tensors.shape,
                                                                             len(photos)))
    for model, outputs in ((m, [("probabilities", 0), ("logits", 0)]),
                           (m + "_tensor", [("probabilities", 0)]),
                           (m + "_tensor", [("probabilities", 5)])):
        for n in (1, 8):
            what = "FP32 %s batch %d %s" % (model, n, [o if k == 0 else "%s top %d" % (o, k)
                                                        for o, k in outputs])
            hr, gr = infer_both(hc, gc, model, "input", "FP32", tensors[:n], outputs,
                                "fp32-%d" % n)
            same_result(hr, gr, outputs, what)
            if outputs[0][1]:
                check_classes(gr, "probabilities", labels, what)
            else:
                p = gr.as_numpy("probabilities")
                check(p.shape == (n, len(labels)) and np.allclose(p.sum(axis=1), 1, atol=1e-4),
                      what + ": probabilities sum to 1")
    for model in (m, m + "_image"):
        for shape in ("[N]", "[N,1]"):
            for n in (1, 3):
                raw = [open(p, "rb").read() for p in photos[:n]]
                data = np.array(raw, dtype=np.object_)
                if shape == "[N,1]":
                    data = data.reshape(n, 1)
                outputs = [("probabilities", 3)]
                what = "BYTES photos %s shape %s batch %d top 3" % (model, shape, n)
                hr, gr = infer_both(hc, gc, model, "image", "BYTES", data, outputs,
                                    "photo-%d" % n)
                same_result(hr, gr, outputs, what)
                check_classes(gr, "probabilities", labels, what)

    # The same requests by async_infer, compressed, and on one stream.
    cases = [("fp32-1", m + "_tensor", "input", "FP32", tensors[:1], [("probabilities", 0)]),
             ("fp32-8", m, "input", "FP32", tensors, [("probabilities", 0), ("logits", 0)]),
             ("top5-8", m + "_tensor", "input", "FP32", tensors, [("probabilities", 5)]),
             ("photos-3", m + "_image", "image", "BYTES",
              np.array([open(p, "rb").read() for p in photos[:3]], dtype=np.object_).reshape(3, 1),
              [("probabilities", 3)])]
    http_answers = {}
    for rid, model, name, datatype, data, outputs in cases:
        hr, gr = infer_both(hc, gc, model, name, datatype, data, outputs, rid)
        http_answers[rid] = (hr, outputs)
        done = queue.Queue()
        gi = grpcclient.InferInput(name, list(data.shape), datatype)
        gi.set_data_from_numpy(data)
        go = [grpcclient.InferRequestedOutput(n, class_count=k) for n, k in outputs]
        gc.async_infer(model, [gi], lambda result, error: done.put((result, error)),
                       request_id=rid, outputs=go)
        result, error = done.get(timeout=300)
        check(error is None, "async_infer %s: answered" % rid, repr(error))
        same_result(hr, result, outputs, "async_infer %s" % rid)
        for algo in ("gzip", "deflate"):
            cr = gc.infer(model, [gi], outputs=go, request_id=rid, compression_algorithm=algo)
            same_result(hr, cr, outputs, "infer %s compression %s" % (rid, algo))
    streamed = queue.Queue()
    gc.start_stream(partial(lambda q, result, error: q.put((result, error)), streamed))
    for rid, model, name, datatype, data, outputs in cases:
        gi = grpcclient.InferInput(name, list(data.shape), datatype)
        gi.set_data_from_numpy(data)
        gc.async_stream_infer(model, [gi], request_id=rid,
                              outputs=[grpcclient.InferRequestedOutput(n, class_count=k)
                                       for n, k in outputs])
    wrong = np.zeros((1, 3, 224, 225), np.float32)
    gc.async_stream_infer(m + "_tensor", [_input(grpcclient, wrong)], request_id="wrong-shape")
    gc.async_stream_infer("no_such_model", [_input(grpcclient, tensors[:1])],
                          request_id="unknown-model")
    gc.stop_stream()
    got, errors = {}, []
    while not streamed.empty():
        result, error = streamed.get()
        if error is not None:
            errors.append(error.message())
        else:
            got[result.get_response().id] = result
    check(sorted(got) == sorted(http_answers), "stream: %d answers with their ids %s"
          % (len(got), sorted(got)), "got %s" % sorted(got))
    for rid, (hr, outputs) in http_answers.items():
        same_result(hr, got[rid], outputs, "stream %s" % rid)
    http_errors = []
    for model, data in ((m + "_tensor", wrong), ("no_such_model", tensors[:1])):
        try:
            hc.infer(model, [_input(httpclient, data)])
        except InferenceServerException as e:
            http_errors.append(e.message())
    check(sorted(errors) == sorted(http_errors) and len(errors) == 2,
          "stream: the wrong shape and the unknown model refused with HTTP's messages",
          "stream %r\n      HTTP %r" % (errors, http_errors))

    # Statistics, now that every view has counted requests from both protocols.
    for v in views + [""]:
        same_message(hc.get_inference_statistics(v), gc.get_inference_statistics(v),
                     "statistics %s" % (v or "(all models)"))
    st = gc.get_inference_statistics(m + "_tensor").model_stats[0].inference_stats.success
    check(st.count > 0, "statistics count the calls (%s_tensor success %d)" % (m, st.count))

    # Errors.
    both_fail(lambda: hc.get_model_metadata("no_such_model"),
              lambda: gc.get_model_metadata("no_such_model"), "unknown model: metadata")
    both_fail(lambda: hc.get_model_metadata(m, "2"),
              lambda: gc.get_model_metadata(m, "2"), "unknown version: metadata")
    both_fail(lambda: hc.get_model_config("no_such_model"),
              lambda: gc.get_model_config("no_such_model"), "unknown model: config")
    both_fail(lambda: hc.get_inference_statistics("no_such_model"),
              lambda: gc.get_inference_statistics("no_such_model"), "unknown model: statistics")
    for name, ver in (("no_such_model", ""), (m, "2")):
        h, g = hc.is_model_ready(name, ver), _answer(lambda: gc.is_model_ready(name, ver))
        check(h is False and g is False, "model ready %s version %r: both False" % (name, ver),
              "HTTP %r, gRPC %s" % (h, ("raised %s" % g) if isinstance(g, Exception) else g))
    both_fail(lambda: hc.load_model(m), lambda: gc.load_model(m), "load_model")
    both_fail(lambda: hc.unload_model(m), lambda: gc.unload_model(m), "unload_model")
    both_fail(lambda: hc.infer("no_such_model", [_input(httpclient, tensors[:1])]),
              lambda: gc.infer("no_such_model", [_input(grpcclient, tensors[:1])]),
              "unknown model: infer")
    wrong = np.zeros((1, 3, 224, 225), np.float32)
    both_fail(lambda: hc.infer(m + "_tensor", [_input(httpclient, wrong)]),
              lambda: gc.infer(m + "_tensor", [_input(grpcclient, wrong)]),
              "wrong shape [1,3,224,225]: infer")
    wrong = tensors[:1].reshape(1, 3 * 224 * 224)
    both_fail(lambda: hc.infer(m, [_input(httpclient, wrong)]),
              lambda: gc.infer(m, [_input(grpcclient, wrong)]),
              "wrong shape [1,150528]: infer")
    print("PASS: %d checks, tritonclient.grpc equal to tritonclient.http" % checks)


def _answer(call):
    """call()'s value, or the exception it raised (to print it)."""
    try:
        return call()
    except InferenceServerException as e:
        return e


def _input(client, data):
    i = client.InferInput("input", list(data.shape), "FP32")
    if client is httpclient:
        i.set_data_from_numpy(data, binary_data=True)
    else:
        i.set_data_from_numpy(data)
    return i


if __name__ == "__main__":
    main()
