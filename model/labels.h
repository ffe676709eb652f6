/* labels.h - the 1000 ImageNet-1k class names and WordNet ids, in class index order.
 *
 * Embedded in the binary at build time (model/data/, copied from pytorch/hub's
 * imagenet_classes.txt; see tests/data/SOURCES.md). Names repeat ("crane" is 134 and 517);
 * WordNet ids do not. Read-only data: thread-safe. */
#ifndef LABELS_H
#define LABELS_H

#define LABELS_COUNT 1000

/* Borrowed strings; "class_<id>" style fallbacks are the caller's business for id >= 1000. */
const char *labels_name(int class_id);
const char *labels_wnid(int class_id);

#endif
