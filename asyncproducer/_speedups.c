/* asyncproducer._speedups: the per-record part of send() in C.
 *
 * BatchRecords: the records of a batch being filled, each encoded into a growing buffer
 * as it is appended (Kafka's record format v2: length, attributes (0), timestampDelta,
 * offsetDelta, key length, key, value length, value, header count, headers; every integer
 * a zigzag varint, -1 for a null key or value). ProducerBatch subclasses it. The
 * reference, and the fallback where this module did not build, is
 * asyncproducer.protocol.batch_records.PyBatchRecords: same results for every input
 * (tests/unit/test_batch_records.py).
 *
 * Appender: send()'s whole synchronous step for a record that needs no Python code (bytes
 * or None key and value, no headers, the default partitioner): find the partition, and
 * append to the open batch of that partition if it has room. Anything else, it declines
 * (returns None, having changed nothing) and send() takes its Python path, which is
 * complete: the Appender is only a shortcut through it (asyncproducer._staging).
 * Appender.send is Producer.send itself: it returns a SendCall, an awaitable that acts as
 * the coroutine and runs it only for the records the shortcut declines.
 *
 * Written against the Limited API (Python 3.11): documented, stable functions only.
 *
 * Memory safety: a record's key, value and header items are borrowed between measuring
 * and writing it; no Python code can run in between: only type checks, UTF-8 conversions
 * and memory allocation (of buffers, which does not start a garbage collection). The
 * future is appended to the futures list last, when the record is written. The Appender
 * calls the clock (time.time, or any callable) before it picks the batch, so that no
 * Python code runs between its checks of the batch and the append.
 */

#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030B0000
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

/* ------------------------------------------------------------------ varints */

static inline uint64_t
zigzag(int64_t n)
{
    return ((uint64_t)n << 1) ^ (n < 0 ? UINT64_MAX : 0);
}

static inline size_t
varint_size(uint64_t zz)
{
    size_t size = 1;
    while (zz >= 0x80) {
        zz >>= 7;
        size++;
    }
    return size;
}

static inline char *
put_varint(char *out, uint64_t zz)
{
    while (zz >= 0x80) {
        *out++ = (char)((zz & 0x7F) | 0x80);
        zz >>= 7;
    }
    *out++ = (char)zz;
    return out;
}

/* Bytes of a length-prefixed field of ``len`` bytes (``len`` >= 0), or of a null one. */
static inline size_t
field_size(const char *data, Py_ssize_t len)
{
    return data == NULL ? 1 : varint_size((uint64_t)len << 1) + (size_t)len;
}

static inline char *
put_field(char *out, const char *data, Py_ssize_t len)
{
    if (data == NULL) {
        *out++ = 1; /* zigzag(-1) */
        return out;
    }
    out = put_varint(out, (uint64_t)len << 1);
    memcpy(out, data, (size_t)len);
    return out + len;
}

/* Sizes are added in size_t, each term and the running total at most PY_SSIZE_T_MAX,
 * so a sum never wraps before it is checked. */
#define ADD_SIZE(total, term)                                            \
    do {                                                                 \
        (total) += (term);                                               \
        if ((total) > (size_t)PY_SSIZE_T_MAX) {                          \
            PyErr_SetString(PyExc_OverflowError,                         \
                            "the encoded records would exceed the largest " \
                            "possible bytes object");                    \
            return -1;                                                   \
        }                                                                \
    } while (0)

/* Py_XSETREF, which the Limited API does not have: store ``value`` (a new reference)
 * in ``slot``, then release what it held. */
#define REPLACE(slot, value)            \
    do {                                \
        PyObject *old_ = (PyObject *)(slot); \
        (slot) = (value);               \
        Py_XDECREF(old_);               \
    } while (0)

/* ------------------------------------------------------------------ validation */

/* Raise ``exc`` with the formatted message followed by ", not <type of obj>". */
static void
raise_not(PyObject *exc, PyObject *obj, const char *format, ...)
{
    PyObject *message, *name;
    va_list vargs;
    va_start(vargs, format);
    message = PyUnicode_FromFormatV(format, vargs);
    va_end(vargs);
    if (message == NULL) {
        return;
    }
    name = PyType_GetName(Py_TYPE(obj));
    if (name != NULL) {
        PyErr_Format(exc, "%U, not %U", message, name);
        Py_DECREF(name);
    }
    Py_DECREF(message);
}

/* Type checks, exact types first: under the Limited API the *_Check macros call
 * PyType_GetFlags(), while a comparison with an exported type object is inline. */
#define IS_TUPLE(o) (Py_IS_TYPE((o), &PyTuple_Type) || PyTuple_Check(o))
#define IS_LIST(o) (Py_IS_TYPE((o), &PyList_Type) || PyList_Check(o))
#define IS_INT(o) (Py_IS_TYPE((o), &PyLong_Type) || PyLong_Check(o))
#define IS_BYTES(o) (Py_IS_TYPE((o), &PyBytes_Type) || PyBytes_Check(o))
#define IS_STR(o) (Py_IS_TYPE((o), &PyUnicode_Type) || PyUnicode_Check(o))

static inline int
is_seq(PyObject *obj)
{
    return IS_TUPLE(obj) || IS_LIST(obj);
}

static inline Py_ssize_t
seq_size(PyObject *seq)
{
    return IS_TUPLE(seq) ? PyTuple_Size(seq) : PyList_Size(seq);
}

/* Borrowed; ``i`` is in range (checked by the caller), so this cannot fail. */
static inline PyObject *
seq_item(PyObject *seq, Py_ssize_t i)
{
    return IS_TUPLE(seq) ? PyTuple_GetItem(seq, i) : PyList_GetItem(seq, i);
}

/* A bytes or None field: data pointer (NULL for None) and length (-1 for None). */
static int
bytes_or_none(PyObject *obj, const char **data, Py_ssize_t *len, const char *what)
{
    char *buf;
    if (obj == Py_None) {
        *data = NULL;
        *len = -1;
        return 0;
    }
    if (!IS_BYTES(obj)) {
        raise_not(PyExc_TypeError, obj, "%s must be bytes or None", what);
        return -1;
    }
    if (PyBytes_AsStringAndSize(obj, &buf, len) < 0) {
        return -1;
    }
    *data = buf;
    return 0;
}

/* One header: its key as UTF-8, and its value (NULL for None). */
static int
header_fields(PyObject *header, Py_ssize_t index, const char **name, Py_ssize_t *name_len,
              const char **value, Py_ssize_t *value_len)
{
    PyObject *key, *val;
    Py_ssize_t n;
    if (!is_seq(header)) {
        raise_not(PyExc_TypeError, header,
                  "header %zd must be a (str, bytes | None) tuple or list", index);
        return -1;
    }
    n = seq_size(header);
    if (n != 2) {
        PyErr_Format(PyExc_ValueError, "header %zd must be a (key, value) pair, got %zd items",
                     index, n);
        return -1;
    }
    key = seq_item(header, 0);
    val = seq_item(header, 1);
    if (!IS_STR(key)) {
        raise_not(PyExc_TypeError, key, "header %zd key must be str", index);
        return -1;
    }
    /* UnicodeEncodeError for a lone surrogate, as str.encode("utf-8") raises. */
    *name = PyUnicode_AsUTF8AndSize(key, name_len);
    if (*name == NULL) {
        return -1;
    }
    if (val == Py_None) {
        *value = NULL;
        *value_len = -1;
        return 0;
    }
    if (!IS_BYTES(val)) {
        raise_not(PyExc_TypeError, val, "header %zd value must be bytes or None", index);
        return -1;
    }
    {
        char *buf;
        if (PyBytes_AsStringAndSize(val, &buf, value_len) < 0) {
            return -1;
        }
        *value = buf;
    }
    return 0;
}

/* Bytes of a non-empty headers field: count, then each key and value. */
static int
headers_size(PyObject *headers, size_t *size)
{
    Py_ssize_t count = seq_size(headers), i;
    size_t total = varint_size((uint64_t)count << 1);
    for (i = 0; i < count; i++) {
        const char *name, *value;
        Py_ssize_t name_len, value_len;
        if (header_fields(seq_item(headers, i), i, &name, &name_len, &value, &value_len) < 0) {
            return -1;
        }
        ADD_SIZE(total, field_size(name, name_len));
        ADD_SIZE(total, field_size(value, value_len));
    }
    *size = total;
    return 0;
}

static char *
put_headers(char *out, PyObject *headers)
{
    Py_ssize_t count = seq_size(headers), i;
    out = put_varint(out, (uint64_t)count << 1);
    for (i = 0; i < count; i++) {
        const char *name, *value;
        Py_ssize_t name_len, value_len;
        /* Validated by headers_size, and nothing can have changed since. */
        if (header_fields(seq_item(headers, i), i, &name, &name_len, &value, &value_len) < 0) {
            return NULL;
        }
        out = put_field(out, name, name_len);
        out = put_field(out, value, value_len);
    }
    return out;
}

static int
int64_of(PyObject *obj, int64_t *out, const char *what)
{
    int overflow;
    long long value;
    if (!IS_INT(obj)) {
        raise_not(PyExc_TypeError, obj, "%s must be int", what);
        return -1;
    }
    value = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow) {
        PyErr_Format(PyExc_ValueError, "%s %R does not fit in a signed 64-bit integer", what,
                     obj);
        return -1;
    }
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = (int64_t)value;
    return 0;
}

/* ------------------------------------------------------------------ BatchRecords */

/* What completing a record needs, kept apart from its encoded bytes. */
typedef struct {
    int64_t timestamp;
    int64_t key_size;   /* -1 for a null key */
    int64_t value_size; /* -1 for a null value */
} RecordInfo;

typedef struct {
    PyObject_HEAD
    PyObject *futures;            /* list: per record, its future (or None) */
    char *buf;                    /* the encoded records; NULL once finished */
    Py_ssize_t buf_cap;
    RecordInfo *infos;            /* per record */
    Py_ssize_t infos_cap;
    Py_ssize_t count;
    Py_ssize_t records_size;      /* bytes used in buf */
    Py_ssize_t max_records_size;
    Py_ssize_t record_capacity;
    long long base_timestamp;
    long long max_timestamp;
    char full;
} BatchRecords;

/* A record, validated and measured, ready to be written. */
typedef struct {
    int64_t timestamp;
    uint64_t delta;       /* zigzag timestamp delta */
    const char *key;      /* NULL for a null key */
    Py_ssize_t key_len;
    const char *value;    /* NULL for a null value */
    Py_ssize_t value_len;
    PyObject *headers;    /* borrowed; NULL when the record has no headers */
    size_t body;          /* bytes of the record after its length prefix */
    size_t size;          /* bytes of the record, length prefix included */
} Record;

static PyObject *
records_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    BatchRecords *self;
    allocfunc alloc = (allocfunc)PyType_GetSlot(type, Py_tp_alloc);
    (void)args;
    (void)kwargs;
    /* A subclass's constructor arguments are its own: __init__ takes what it needs. */
    self = (BatchRecords *)alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->futures = PyList_New(0);
    if (self->futures == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    self->base_timestamp = self->max_timestamp = -1;
    return (PyObject *)self;
}

static int
records_init(BatchRecords *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"max_records_size", "record_capacity", NULL};
    Py_ssize_t max_records_size, record_capacity;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "nn", keywords, &max_records_size,
                                     &record_capacity)) {
        return -1;
    }
    self->max_records_size = max_records_size;
    self->record_capacity = record_capacity;
    return 0;
}

static int
records_traverse(BatchRecords *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE((PyObject *)self));
    Py_VISIT(self->futures);
    return 0;
}

static int
records_clear(BatchRecords *self)
{
    Py_CLEAR(self->futures);
    return 0;
}

static void
records_dealloc(BatchRecords *self)
{
    PyTypeObject *type = Py_TYPE((PyObject *)self);
    freefunc free_self = (freefunc)PyType_GetSlot(type, Py_tp_free);
    PyObject_GC_UnTrack(self);
    records_clear(self);
    PyMem_Free(self->buf);
    PyMem_Free(self->infos);
    free_self(self);
    Py_DECREF(type);
}

/* Validate and measure a record appended as record number ``self->count``. */
static int
measure_record(BatchRecords *self, PyObject *timestamp, PyObject *key, PyObject *value,
               PyObject *headers, Record *rec)
{
    int64_t ts, base;
    size_t body;
    if (int64_of(timestamp, &ts, "timestamp") < 0 ||
        bytes_or_none(key, &rec->key, &rec->key_len, "key") < 0 ||
        bytes_or_none(value, &rec->value, &rec->value_len, "value") < 0) {
        return -1;
    }
    base = self->count ? (int64_t)self->base_timestamp : ts;
    /* ts - base in int64, or ValueError, as the Python encoder raises. */
    if ((base < 0 && ts > INT64_MAX + base) || (base > 0 && ts < INT64_MIN + base)) {
        PyErr_Format(PyExc_ValueError,
                     "the delta of timestamp %R from the batch's base timestamp %lld does not "
                     "fit in a signed 64-bit varlong",
                     timestamp, (long long)base);
        return -1;
    }
    rec->timestamp = ts;
    rec->delta = zigzag(ts - base);
    body = 1 + varint_size(rec->delta) + varint_size((uint64_t)self->count << 1);
    body += field_size(rec->key, rec->key_len);
    ADD_SIZE(body, field_size(rec->value, rec->value_len));
    if (headers == Py_None) {
        /* As the Python records, which test headers for truth: no headers. */
        rec->headers = NULL;
        body += 1;
    }
    else if (!is_seq(headers)) {
        raise_not(PyExc_TypeError, headers,
                  "headers must be a tuple or list of (str, bytes | None) pairs");
        return -1;
    }
    else if (seq_size(headers) == 0) {
        rec->headers = NULL;
        body += 1; /* a header count of 0 */
    }
    else {
        size_t hsize;
        if (headers_size(headers, &hsize) < 0) {
            return -1;
        }
        rec->headers = headers;
        ADD_SIZE(body, hsize);
    }
    rec->body = body;
    rec->size = varint_size((uint64_t)body << 1) + body;
    ADD_SIZE(rec->size, 0); /* the prefix may carry it past the limit */
    return 0;
}

/* Room for ``more`` bytes and one more record; raises MemoryError. */
static int
reserve(BatchRecords *self, size_t more)
{
    size_t need = (size_t)self->records_size + more;
    if (need > (size_t)self->buf_cap) {
        size_t cap = self->buf_cap ? (size_t)self->buf_cap * 2 : 256;
        char *grown;
        if (cap < need) {
            cap = need;
        }
        /* Never more than a batch needs, once it is past the first record. */
        if (cap > need && cap > (size_t)self->max_records_size) {
            cap = need > (size_t)self->max_records_size ? need : (size_t)self->max_records_size;
        }
        if (cap > (size_t)PY_SSIZE_T_MAX) {
            PyErr_NoMemory();
            return -1;
        }
        grown = (char *)PyMem_Realloc(self->buf, cap);
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->buf = grown;
        self->buf_cap = (Py_ssize_t)cap;
    }
    if (self->count == self->infos_cap) {
        size_t cap = self->infos_cap ? (size_t)self->infos_cap * 2 : 16;
        RecordInfo *grown;
        if (cap > SIZE_MAX / sizeof(RecordInfo)) {
            PyErr_NoMemory();
            return -1;
        }
        grown = (RecordInfo *)PyMem_Realloc(self->infos, cap * sizeof(RecordInfo));
        if (grown == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        self->infos = grown;
        self->infos_cap = (Py_ssize_t)cap;
    }
    return 0;
}

/* Append a measured record: 1 if appended, 0 if it does not fit, -1 on error. */
static int
append_record(BatchRecords *self, PyObject *future, const Record *rec)
{
    char *out;
    RecordInfo *info;
    /* max_records_size is negative for a batch_size below the batch header's size (0 is
     * allowed): then only the first record fits, as in the Python records. Tested before
     * the comparison in size_t, where it would be huge. */
    if (self->count && (self->max_records_size < 0 ||
                        (size_t)self->records_size + rec->size > (size_t)self->max_records_size)) {
        return 0;
    }
    if (reserve(self, rec->size) < 0) {
        return -1;
    }
    /* Written past the records first, committed (records_size, count) only once the
     * future is in the list: a failure leaves the batch as it was. */
    out = self->buf + self->records_size;
    out = put_varint(out, (uint64_t)rec->body << 1);
    *out++ = 0; /* attributes */
    out = put_varint(out, rec->delta);
    out = put_varint(out, (uint64_t)self->count << 1);
    out = put_field(out, rec->key, rec->key_len);
    out = put_field(out, rec->value, rec->value_len);
    if (rec->headers == NULL) {
        *out++ = 0;
    }
    else if (put_headers(out, rec->headers) == NULL) {
        return -1; /* cannot happen: measure_record validated them */
    }
    if (PyList_Append(self->futures, future) < 0) {
        return -1;
    }
    info = &self->infos[self->count];
    info->timestamp = rec->timestamp;
    info->key_size = rec->key_len;
    info->value_size = rec->value_len;
    if (self->count == 0) {
        self->base_timestamp = self->max_timestamp = rec->timestamp;
    }
    else if (rec->timestamp > self->max_timestamp) {
        self->max_timestamp = rec->timestamp;
    }
    self->records_size += (Py_ssize_t)rec->size;
    self->count++;
    return 1;
}

/* Whether a record may be appended at all: not finished, below record_capacity. */
static inline int
takes_more(const BatchRecords *self)
{
    return !self->full && self->count < self->record_capacity;
}

static PyObject *
records_append(BatchRecords *self, PyObject *const *args, Py_ssize_t nargs)
{
    Record rec;
    int appended;
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError,
                     "append() takes 5 arguments (future, timestamp, key, value, headers), "
                     "%zd given",
                     nargs);
        return NULL;
    }
    if (!takes_more(self)) {
        Py_RETURN_FALSE;
    }
    if (measure_record(self, args[1], args[2], args[3], args[4], &rec) < 0) {
        return NULL;
    }
    appended = append_record(self, args[0], &rec);
    if (appended < 0) {
        return NULL;
    }
    return PyBool_FromLong(appended);
}

static PyObject *
records_finish(BatchRecords *self, PyObject *unused)
{
    PyObject *records;
    (void)unused;
    if (self->full) {
        PyErr_SetString(PyExc_RuntimeError, "finish() was already called");
        return NULL;
    }
    records = PyBytes_FromStringAndSize(self->count ? self->buf : "", self->records_size);
    if (records == NULL) {
        return NULL;
    }
    /* The records live on in the bytes; the infos stay for metadata(). */
    self->full = 1;
    PyMem_Free(self->buf);
    self->buf = NULL;
    self->buf_cap = 0;
    return records;
}

/* tuple's tp_new, set by speedups_exec: tuple.__new__ without the checks its Python
 * wrapper makes (records_metadata makes them, once per call). It, not the type's tp_alloc
 * with the items set in place: it also initializes what a tuple holds besides its items.
 * Python 3.14's tuples cache their hash, "not computed" being -1; tp_alloc zeroes it, so
 * every instance would hash to 0, unlike an equal one built in Python (this abi3 binary
 * runs on every Python from 3.11). */
static newfunc tuple_new;
static PyObject *str_new; /* "__new__" */

/* One record's metadata: an instance of ``type`` (a tuple subclass that tuple.__new__
 * may build, or tuple itself) holding (topic, partition, offset, timestamp, key size,
 * value size), as tuple.__new__(type, fields) builds it: no Python code runs.
 *
 * ``*args`` is (fields,), reused from one record to the next (NULL: none yet): tuple_new
 * copies the fields' items into the new instance and keeps neither tuple, so both are
 * the caller's alone again after it, and their items may be replaced (what
 * PyTuple_SetItem requires: a reference count of 1; new ones otherwise). Not reused for
 * tuple itself, whose instance is the fields tuple. Steals nothing (borrows the fields);
 * NULL on error. */
static PyObject *
new_metadata(PyTypeObject *type, PyObject **args, PyObject *topic, PyObject *partition,
             PyObject *offset, PyObject *timestamp, PyObject *key_size, PyObject *value_size)
{
    PyObject *fields;
    if (type == &PyTuple_Type) {
        /* tuple.__new__(tuple, fields) is fields itself */
        return PyTuple_Pack(6, topic, partition, offset, timestamp, key_size, value_size);
    }
    if (*args == NULL || Py_REFCNT(*args) != 1 ||
        Py_REFCNT(PyTuple_GetItem(*args, 0)) != 1) {
        Py_CLEAR(*args);
        fields = PyTuple_New(6);
        if (fields == NULL) {
            return NULL;
        }
        *args = PyTuple_New(1);
        if (*args == NULL) {
            Py_DECREF(fields);
            return NULL;
        }
        PyTuple_SetItem(*args, 0, fields); /* steals */
    }
    fields = PyTuple_GetItem(*args, 0); /* borrowed */
    /* Each steals its item, and releases the previous record's (NULL at first). */
    PyTuple_SetItem(fields, 0, Py_NewRef(topic));
    PyTuple_SetItem(fields, 1, Py_NewRef(partition));
    PyTuple_SetItem(fields, 2, Py_NewRef(offset));
    PyTuple_SetItem(fields, 3, Py_NewRef(timestamp));
    PyTuple_SetItem(fields, 4, Py_NewRef(key_size));
    PyTuple_SetItem(fields, 5, Py_NewRef(value_size));
    return tuple_new(type, *args, NULL);
}

/* The int ``value`` as the last call made it, when the value is the same: the records of
 * a batch mostly share their timestamp (milliseconds) and sizes, and one int object for
 * them all saves an allocation per field and record (ints are immutable). */
typedef struct {
    int64_t value;
    PyObject *obj; /* NULL: none yet */
} LastInt;

/* A new reference to the int ``value``; NULL on error. */
static PyObject *
last_int(LastInt *last, int64_t value)
{
    if (last->obj == NULL || last->value != value) {
        PyObject *obj = PyLong_FromLongLong(value);
        if (obj == NULL) {
            return NULL;
        }
        Py_XDECREF(last->obj);
        last->obj = obj;
        last->value = value;
    }
    return Py_NewRef(last->obj);
}

/* 1 if instances of ``type`` (a tuple subclass, or tuple) holding ``topic``,
 * ``partition`` and ints cannot be part of a reference cycle; 0 if they might; -1 on
 * error. */
static int
untrackable(PyTypeObject *type, PyObject *topic, PyObject *partition)
{
    PyObject *offset;
    Py_ssize_t dict_offset;
    if (PyObject_GC_IsTracked(topic) || PyObject_GC_IsTracked(partition)) {
        return 0;
    }
    if (type == &PyTuple_Type) {
        return 1;
    }
    offset = PyObject_GetAttrString((PyObject *)type, "__dictoffset__");
    if (offset == NULL) {
        return -1;
    }
    dict_offset = PyLong_AsSsize_t(offset);
    Py_DECREF(offset);
    if (dict_offset == -1 && PyErr_Occurred()) {
        return -1;
    }
    return dict_offset == 0;
}

static PyObject *
records_metadata(BatchRecords *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyTypeObject *type;
    PyObject *topic, *partition, *result, *offset = NULL, *timestamp = NULL;
    PyObject *call_args = NULL; /* new_metadata's (fields,), reused */
    LastInt timestamps = {0, NULL}, key_sizes = {0, NULL}, value_sizes = {0, NULL};
    int64_t base_offset, log_append_time;
    Py_ssize_t count, i;
    int untrack;
    if (nargs != 5) {
        PyErr_Format(PyExc_TypeError,
                     "metadata() takes 5 arguments (metadata_type, topic, partition, "
                     "base_offset, log_append_time), %zd given",
                     nargs);
        return NULL;
    }
    if (!PyType_Check(args[0]) || !PyType_IsSubtype((PyTypeObject *)args[0], &PyTuple_Type)) {
        raise_not(PyExc_TypeError, args[0], "metadata_type must be a subclass of tuple");
        return NULL;
    }
    type = (PyTypeObject *)args[0];
    if (type != &PyTuple_Type) {
        /* tuple.__new__(metadata_type), an empty instance, through the Python wrapper:
         * its TypeError for a subclass that tuple_new cannot build, one with its own
         * layout and tp_new (a struct sequence, such as os.stat_result: it holds more
         * items than its length, which tuple_new would not allocate). Once per call,
         * before the records are read: the probe's death may run Python code (__del__). */
        PyObject *probe = PyObject_CallMethodObjArgs((PyObject *)&PyTuple_Type, str_new,
                                                     (PyObject *)type, NULL);
        if (probe == NULL) {
            return NULL;
        }
        Py_DECREF(probe);
    }
    topic = args[1];
    partition = args[2];
    /* Untracked by the garbage collector, as it untracks a plain tuple of atoms at its
     * first collection (but never a subclass's instance): one that holds only atoms (str,
     * int) and has no __dict__ cannot be part of a cycle. A send_batch() holds its results
     * until all are in; tracked, each would be promoted, and thousands a call set off full
     * collections of the whole heap. */
    untrack = untrackable(type, topic, partition);
    if (untrack < 0) {
        return NULL;
    }
    if (int64_of(args[3], &base_offset, "base_offset") < 0 ||
        int64_of(args[4], &log_append_time, "log_append_time") < 0) {
        return NULL;
    }
    /* The count now: allocating the items may start a garbage collection, whose
     * finalizers could append to this batch (the infos are re-read per record: a
     * realloc may move them). */
    count = self->count;
    result = PyList_New(count);
    if (result == NULL) {
        return NULL;
    }
    if (base_offset < 0) {
        offset = PyLong_FromLong(-1); /* unknown (acks=0): the same for every record */
        if (offset == NULL) {
            Py_DECREF(result);
            return NULL;
        }
    }
    if (log_append_time >= 0) {
        timestamp = Py_NewRef(args[4]); /* the broker's, the same for every record */
    }
    for (i = 0; i < count; i++) {
        const RecordInfo *info = &self->infos[i];
        PyObject *record_offset = offset, *record_timestamp = timestamp, *item = NULL;
        PyObject *key_size = last_int(&key_sizes, info->key_size);
        PyObject *value_size = last_int(&value_sizes, info->value_size);
        if (record_offset == NULL) {
            /* base_offset + i in uint64 (base_offset >= 0 here): it may pass INT64_MAX,
             * as the Python reference's range() does, never 2**64. */
            record_offset = PyLong_FromUnsignedLongLong((uint64_t)base_offset + (uint64_t)i);
        }
        else {
            Py_INCREF(record_offset);
        }
        if (record_timestamp == NULL) {
            record_timestamp = last_int(&timestamps, info->timestamp);
        }
        else {
            Py_INCREF(record_timestamp);
        }
        if (record_offset != NULL && record_timestamp != NULL && key_size != NULL &&
            value_size != NULL) {
            item = new_metadata(type, &call_args, topic, partition, record_offset,
                                record_timestamp, key_size, value_size);
        }
        Py_XDECREF(record_offset);
        Py_XDECREF(record_timestamp);
        Py_XDECREF(key_size);
        Py_XDECREF(value_size);
        if (item == NULL) {
            Py_CLEAR(result);
            break;
        }
        if (untrack) {
            PyObject_GC_UnTrack(item);
        }
        PyList_SetItem(result, i, item); /* steals */
    }
    Py_XDECREF(timestamps.obj);
    Py_XDECREF(key_sizes.obj);
    Py_XDECREF(value_sizes.obj);
    Py_XDECREF(call_args);
    Py_XDECREF(offset);
    Py_XDECREF(timestamp);
    return result;
}

static PyObject *
records_get_record_count(BatchRecords *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->count);
}

static PyObject *
records_get_record_capacity(BatchRecords *self, void *closure)
{
    (void)closure;
    return PyLong_FromSsize_t(self->record_capacity);
}

/* A setter, not a T_PYSSIZET member: on Python 3.11 a member stores -1 before it finds
 * that the value is not an int (or too large), so a failed assignment would leave the
 * batch taking no more records. */
static int
records_set_record_capacity(BatchRecords *self, PyObject *value, void *closure)
{
    Py_ssize_t capacity;
    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_TypeError, "record_capacity cannot be deleted");
        return -1;
    }
    if (!IS_INT(value)) {
        raise_not(PyExc_TypeError, value, "record_capacity must be int");
        return -1;
    }
    capacity = PyLong_AsSsize_t(value);
    if (capacity == -1 && PyErr_Occurred()) {
        return -1;
    }
    self->record_capacity = capacity;
    return 0;
}

static PyMethodDef records_methods[] = {
    {"append", (PyCFunction)(void (*)(void))records_append, METH_FASTCALL,
     "append(future, timestamp, key, value, headers, /)\n--\n\n"
     "Keep the record and its future if it fits; False, keeping nothing, once finished,\n"
     "at record_capacity records, or when the records would outgrow max_records_size\n"
     "(the first record always fits)."},
    {"finish", (PyCFunction)records_finish, METH_NOARGS,
     "finish()\n--\n\n"
     "The encoded records; takes no more records. Once: a second call raises\n"
     "RuntimeError."},
    {"metadata", (PyCFunction)(void (*)(void))records_metadata, METH_FASTCALL,
     "metadata(metadata_type, topic, partition, base_offset, log_append_time, /)\n--\n\n"
     "Per record, metadata_type(topic, partition, offset, timestamp, key size, value\n"
     "size) as tuple.__new__ builds it: offset base_offset + i (-1 for every record\n"
     "if base_offset < 0), timestamp the record's (log_append_time if >= 0)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef records_members[] = {
    {"futures", T_OBJECT_EX, offsetof(BatchRecords, futures), READONLY,
     "Per record, the future appended with it (None for a record without one)."},
    {"max_records_size", T_PYSSIZET, offsetof(BatchRecords, max_records_size), READONLY,
     "Encoded (uncompressed) record bytes that fit, unless a single record is larger."},
    {"records_size", T_PYSSIZET, offsetof(BatchRecords, records_size), READONLY,
     "Bytes of the records appended so far, encoded."},
    {"base_timestamp", T_LONGLONG, offsetof(BatchRecords, base_timestamp), READONLY,
     "The first record's timestamp (-1 before it): the base of the deltas."},
    {"max_timestamp", T_LONGLONG, offsetof(BatchRecords, max_timestamp), READONLY, NULL},
    {"full", T_BOOL, offsetof(BatchRecords, full), READONLY,
     "finish() was called: it takes no more records."},
    {NULL, 0, 0, 0, NULL},
};

static PyGetSetDef records_getset[] = {
    {"record_count", (getter)records_get_record_count, NULL, "Records appended so far.", NULL},
    {"record_capacity", (getter)records_get_record_capacity,
     (setter)records_set_record_capacity, "Records it takes at most (the owner may raise it).",
     NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot records_slots[] = {
    {Py_tp_doc, "The records of a batch being filled, encoded as they are appended (see\n"
                "asyncproducer.protocol.batch_records)."},
    {Py_tp_new, records_new},
    {Py_tp_init, records_init},
    {Py_tp_dealloc, records_dealloc},
    {Py_tp_traverse, records_traverse},
    {Py_tp_clear, records_clear},
    {Py_tp_methods, records_methods},
    {Py_tp_members, records_members},
    {Py_tp_getset, records_getset},
    {0, NULL},
};

static PyType_Spec records_spec = {
    "asyncproducer._speedups.BatchRecords",
    sizeof(BatchRecords),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    records_slots,
};

/* ------------------------------------------------------------------ murmur2 */

/* Java's Utils.murmur2 (seed 0x9747b28c), as asyncproducer.partitioners._murmur2_u32. */
static uint32_t
murmur2(const unsigned char *data, Py_ssize_t length)
{
    const uint32_t m = 0x5bd1e995;
    uint32_t h = 0x9747b28c ^ (uint32_t)length;
    Py_ssize_t i, end = length & ~(Py_ssize_t)3;
    for (i = 0; i < end; i += 4) {
        uint32_t k = (uint32_t)data[i] | ((uint32_t)data[i + 1] << 8) |
                     ((uint32_t)data[i + 2] << 16) | ((uint32_t)data[i + 3] << 24);
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (length & 3) {
    case 3:
        h ^= (uint32_t)data[end + 2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)data[end + 1] << 8;
        /* fall through */
    case 1:
        h ^= (uint32_t)data[end];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

static PyObject *
speedups_murmur2(PyObject *module, PyObject *data)
{
    char *buf;
    Py_ssize_t len;
    (void)module;
    if (!IS_BYTES(data)) {
        raise_not(PyExc_TypeError, data, "murmur2() takes bytes");
        return NULL;
    }
    if (PyBytes_AsStringAndSize(data, &buf, &len) < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLong(murmur2((const unsigned char *)buf, len));
}

/* fill_sinks(sinks, outcomes): for each (first, results, slot, count) of ``sinks`` (see
 * ProducerBatch.add_sink), results[slot:slot + count] = outcomes[first:first + count];
 * returns how many outcomes that reported. With keys nearly every send_batch() record is
 * a sink of its own, and a slice assignment each cost more than the rest of its
 * completion. */
static PyObject *
speedups_fill_sinks(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *sinks, *outcomes;
    Py_ssize_t count_sinks, i, reported = 0;
    (void)module;
    if (nargs != 2 || !PyList_CheckExact(args[0]) || !PyList_CheckExact(args[1])) {
        PyErr_SetString(PyExc_TypeError, "fill_sinks() takes two lists: sinks, outcomes");
        return NULL;
    }
    sinks = args[0];
    outcomes = args[1];
    count_sinks = PyList_Size(sinks);
    for (i = 0; i < count_sinks; i++) {
        PyObject *sink = PyList_GetItem(sinks, i), *results; /* borrowed */
        Py_ssize_t field[4] = {0}, k;
        if (sink == NULL) {
            return NULL;
        }
        if (!PyTuple_CheckExact(sink) || PyTuple_Size(sink) != 4 ||
            !PyList_CheckExact(results = PyTuple_GetItem(sink, 1))) {
            PyErr_SetString(PyExc_TypeError,
                            "a sink is a tuple (first, results, slot, count), results a list");
            return NULL;
        }
        for (k = 0; k < 4; k++) {
            if (k != 1) {
                field[k] = PyLong_AsSsize_t(PyTuple_GetItem(sink, k));
                if (field[k] < 0) {
                    if (!PyErr_Occurred()) {
                        PyErr_SetString(PyExc_ValueError, "a sink's indexes are not negative");
                    }
                    return NULL;
                }
            }
        }
        for (k = 0; k < field[3]; k++) {
            /* Both bounds-checked: IndexError for a sink beyond either list. */
            PyObject *outcome = PyList_GetItem(outcomes, field[0] + k);
            if (outcome == NULL ||
                PyList_SetItem(results, field[2] + k, Py_NewRef(outcome)) < 0) {
                return NULL;
            }
        }
        reported += field[3];
    }
    return PyLong_FromSsize_t(reported);
}

/* ------------------------------------------------------------------ module state */

typedef struct {
    /* This module's BatchRecords: the Appender takes its records_type only if it is a
     * subclass, since it appends to the batches as BatchRecords structs. */
    PyTypeObject *records_type;
    PyTypeObject *send_call_type;
} ModuleState;

/* ------------------------------------------------------------------ Appender */

typedef struct {
    PyObject_HEAD
    PyObject *metadata;     /* its .snapshot.topics: name -> TopicInfo */
    PyObject *sticky;       /* dict: topic -> the keyless records' sticky partition */
    PyObject *queues;       /* dict: (topic, partition) -> deque of batches */
    PyObject *clock;        /* time.time */
    PyTypeObject *records_type;
    Py_ssize_t size_limit;  /* a batch of one record may be this large */
    Py_ssize_t bare_bound;  /* that batch's size, but for the key's and value's bytes */
    int hash_keys;          /* keyed records go to murmur2(key) % partitions */
    /* The last topic looked up, in the last snapshot (snapshots are immutable). */
    PyObject *cached_snapshot;
    PyObject *cached_topic;
    Py_ssize_t cached_partitions;
    /* send() in C (see SendCall), set by the producer: */
    PyTypeObject *send_call_type;
    allocfunc send_call_alloc; /* its tp_alloc, looked up once */
    PyObject *new_future;  /* the running loop's future factory */
    PyObject *python_send; /* Producer.send, bound: the coroutine for every other case */
    char open;             /* the producer is running: send() may take the shortcut */
} Appender;

static PyObject *str_snapshot, *str_topics, *str_partitions, *str_error_code;

static int
appender_init(Appender *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"metadata", "sticky", "queues", "clock", "records_type",
                               "size_limit", "bare_bound", "hash_keys", NULL};
    PyObject *metadata, *sticky, *queues, *clock, *records_type;
    Py_ssize_t size_limit, bare_bound;
    int hash_keys;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "$OO!O!OO!nnp", keywords, &metadata,
                                     &PyDict_Type, &sticky, &PyDict_Type, &queues,
                                     &clock, &PyType_Type, &records_type, &size_limit,
                                     &bare_bound, &hash_keys)) {
        return -1;
    }
    {
        /* Any other type would be read as a BatchRecords struct it is not (the batch
         * found in a queue is cast once it passes PyObject_TypeCheck). */
        PyObject *module = PyType_GetModule(Py_TYPE((PyObject *)self)); /* borrowed */
        ModuleState *state;
        if (module == NULL) {
            return -1;
        }
        state = (ModuleState *)PyModule_GetState(module);
        if (state == NULL || state->records_type == NULL || state->send_call_type == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "asyncproducer._speedups is not initialized");
            return -1;
        }
        REPLACE(self->send_call_type, (PyTypeObject *)Py_NewRef((PyObject *)state->send_call_type));
        self->send_call_alloc = (allocfunc)PyType_GetSlot(self->send_call_type, Py_tp_alloc);
        if (!PyType_IsSubtype((PyTypeObject *)records_type, state->records_type)) {
            PyErr_Format(PyExc_TypeError,
                         "records_type must be a subclass of asyncproducer._speedups."
                         "BatchRecords, not %R",
                         records_type);
            return -1;
        }
    }
    REPLACE(self->metadata, Py_NewRef(metadata));
    REPLACE(self->sticky, Py_NewRef(sticky));
    REPLACE(self->queues, Py_NewRef(queues));
    REPLACE(self->clock, Py_NewRef(clock));
    REPLACE(self->records_type, (PyTypeObject *)Py_NewRef(records_type));
    Py_CLEAR(self->cached_snapshot);
    Py_CLEAR(self->cached_topic);
    self->size_limit = size_limit;
    self->bare_bound = bare_bound;
    self->hash_keys = hash_keys;
    return 0;
}

static int
appender_traverse(Appender *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE((PyObject *)self));
    Py_VISIT(self->metadata);
    Py_VISIT(self->sticky);
    Py_VISIT(self->queues);
    Py_VISIT(self->clock);
    Py_VISIT(self->records_type);
    Py_VISIT(self->cached_snapshot);
    Py_VISIT(self->cached_topic);
    Py_VISIT(self->send_call_type);
    Py_VISIT(self->new_future);
    Py_VISIT(self->python_send);
    return 0;
}

static int
appender_clear(Appender *self)
{
    Py_CLEAR(self->metadata);
    Py_CLEAR(self->sticky);
    Py_CLEAR(self->queues);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->records_type);
    Py_CLEAR(self->cached_snapshot);
    Py_CLEAR(self->cached_topic);
    Py_CLEAR(self->send_call_type);
    Py_CLEAR(self->new_future);
    Py_CLEAR(self->python_send);
    return 0;
}

static void
appender_dealloc(Appender *self)
{
    PyTypeObject *type = Py_TYPE((PyObject *)self);
    freefunc free_self = (freefunc)PyType_GetSlot(type, Py_tp_free);
    PyObject_GC_UnTrack(self);
    appender_clear(self);
    free_self(self);
    Py_DECREF(type);
}

/* The topic's partition count, 0 when its metadata is not usable now (unknown, no
 * partitions, an error), -1 on error. */
static Py_ssize_t
partition_count(Appender *self, PyObject *topic)
{
    PyObject *snapshot, *topics, *info = NULL, *attr;
    Py_ssize_t count = 0;
    long error_code;
    if (self->metadata == NULL) {
        return 0; /* not initialized */
    }
    snapshot = PyObject_GetAttr(self->metadata, str_snapshot);
    if (snapshot == NULL) {
        return -1;
    }
    if (snapshot == self->cached_snapshot && topic == self->cached_topic) {
        Py_DECREF(snapshot);
        return self->cached_partitions;
    }
    topics = PyObject_GetAttr(snapshot, str_topics);
    if (topics == NULL) {
        goto error;
    }
    if (!PyDict_Check(topics)) {
        Py_DECREF(topics);
        Py_DECREF(snapshot);
        return 0;
    }
    info = PyDict_GetItemWithError(topics, topic);
    /* Owned from here: an attribute lookup below could run Python code. */
    Py_XINCREF(info);
    Py_DECREF(topics);
    if (info == NULL) {
        Py_DECREF(snapshot);
        return PyErr_Occurred() ? -1 : 0;
    }
    attr = PyObject_GetAttr(info, str_error_code);
    if (attr == NULL) {
        goto error;
    }
    error_code = PyLong_Check(attr) ? PyLong_AsLong(attr) : -1;
    Py_DECREF(attr);
    if (error_code == -1 && PyErr_Occurred()) {
        goto error;
    }
    if (error_code == 0) {
        attr = PyObject_GetAttr(info, str_partitions);
        if (attr == NULL) {
            goto error;
        }
        count = PyObject_Size(attr);
        Py_DECREF(attr);
        if (count < 0) {
            goto error;
        }
    }
    Py_DECREF(info);
    REPLACE(self->cached_snapshot, snapshot); /* takes the reference */
    REPLACE(self->cached_topic, Py_NewRef(topic));
    self->cached_partitions = count;
    return count;

error:
    Py_XDECREF(info);
    Py_DECREF(snapshot);
    return -1;
}

/* An int in [0, limit), or -1 (for anything else: not an exact int, out of range). */
static Py_ssize_t
index_below(PyObject *obj, Py_ssize_t limit)
{
    Py_ssize_t value;
    if (!Py_IS_TYPE(obj, &PyLong_Type)) {
        return -1;
    }
    value = PyLong_AsSsize_t(obj);
    if (value == -1 && PyErr_Occurred()) {
        PyErr_Clear(); /* too large: out of range */
        return -1;
    }
    return value < limit ? value : -1;
}

/* appender.append(topic, value, key, partition, timestamp_ms, headers, future): the
 * batch the record went into, or None, having changed nothing, when the record needs
 * send()'s Python path. */
static PyObject *append_fields(Appender *self, PyObject *const *fields, PyObject *future);

static PyObject *
appender_append(Appender *self, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 7) {
        PyErr_Format(PyExc_TypeError,
                     "append() takes 7 arguments (topic, value, key, partition, timestamp_ms, "
                     "headers, future), %zd given",
                     nargs);
        return NULL;
    }
    return append_fields(self, args, args[6]);
}

/* append()'s work: ``fields`` are send()'s six arguments (topic, value, key, partition,
 * timestamp_ms, headers). The batch (a new reference), or None (a new reference) having
 * changed nothing, or NULL with an exception. */
static PyObject *
append_fields(Appender *self, PyObject *const *fields, PyObject *future)
{
    PyObject *topic = fields[0], *value = fields[1], *key = fields[2];
    PyObject *partition = fields[3], *timestamp = fields[4], *headers = fields[5];
    PyObject *partition_obj = NULL, *stamp = NULL, *queue_key, *queue, *batch = NULL;
    Py_ssize_t count, chosen, size, queued;
    Record rec;
    int appended;

    /* What only the Python path handles: serialization, headers, a topic that is not a
     * str (its check, and a lookup that could run Python code or fail). Exact types
     * only: a subclass may iterate, measure or compare as its C size does not say. */
    if (!PyUnicode_CheckExact(topic) ||
        (value != Py_None && !Py_IS_TYPE(value, &PyBytes_Type)) ||
        (key != Py_None && !Py_IS_TYPE(key, &PyBytes_Type)) ||
        (headers != Py_None &&
         !((PyTuple_CheckExact(headers) || PyList_CheckExact(headers)) &&
           seq_size(headers) == 0))) {
        Py_RETURN_NONE;
    }
    count = partition_count(self, topic);
    if (count <= 0) {
        if (count < 0) {
            return NULL;
        }
        Py_RETURN_NONE; /* the Python path waits for the metadata */
    }

    /* The partition: given, or the key's, or the topic's sticky one. */
    if (partition != Py_None) {
        if (index_below(partition, count) < 0) {
            Py_RETURN_NONE; /* the Python path raises PartitionOutOfRangeError */
        }
        partition_obj = Py_NewRef(partition);
    }
    else if (key != Py_None && self->hash_keys) {
        char *buf;
        Py_ssize_t len;
        if (PyBytes_AsStringAndSize(key, &buf, &len) < 0) {
            return NULL;
        }
        chosen = (Py_ssize_t)((murmur2((const unsigned char *)buf, len) & 0x7fffffff) %
                              (uint32_t)count);
        partition_obj = PyLong_FromSsize_t(chosen);
        if (partition_obj == NULL) {
            return NULL;
        }
    }
    else {
        PyObject *sticky = PyDict_GetItemWithError(self->sticky, topic); /* borrowed */
        if (sticky == NULL) {
            if (PyErr_Occurred()) {
                return NULL;
            }
            Py_RETURN_NONE; /* no sticky partition yet: the partitioner chooses one */
        }
        if (index_below(sticky, count) < 0) {
            Py_RETURN_NONE; /* stale (the topic shrank): the partitioner decides */
        }
        partition_obj = Py_NewRef(sticky);
    }

    /* A record too large for any batch: the Python path raises RecordTooLargeError. */
    size = self->bare_bound + (key == Py_None ? -1 : PyBytes_Size(key)) +
           (value == Py_None ? -1 : PyBytes_Size(value));
    if (size > self->size_limit) {
        goto decline;
    }

    /* The timestamp: given (an int the Python path would accept), or now. Before the
     * batch is chosen: the clock may be Python code, and none may run after that. */
    if (timestamp == Py_None) {
        PyObject *now = PyObject_CallNoArgs(self->clock);
        double seconds;
        if (now == NULL) {
            goto error;
        }
        seconds = PyFloat_AsDouble(now);
        Py_DECREF(now);
        if (seconds == -1.0 && PyErr_Occurred()) {
            goto error;
        }
        /* int(time.time() * 1000), as the Python path */
        stamp = PyLong_FromDouble(seconds * 1000.0);
        if (stamp == NULL) {
            goto error;
        }
    }
    else if (Py_IS_TYPE(timestamp, &PyLong_Type)) {
        stamp = Py_NewRef(timestamp);
    }
    else {
        goto decline; /* the Python path raises InvalidRecordTimestampError */
    }

    /* The partition's open batch: the last of its queue. */
    queue_key = PyTuple_Pack(2, topic, partition_obj);
    if (queue_key == NULL) {
        goto error;
    }
    queue = PyDict_GetItemWithError(self->queues, queue_key);
    Py_XINCREF(queue); /* owned: the size and item lookups are calls */
    Py_DECREF(queue_key);
    if (queue == NULL) {
        if (PyErr_Occurred()) {
            goto error;
        }
        goto decline; /* no batch yet */
    }
    queued = PyObject_Size(queue);
    if (queued > 0) {
        batch = PySequence_GetItem(queue, queued - 1);
    }
    Py_DECREF(queue);
    if (queued < 0 || (queued > 0 && batch == NULL)) {
        goto error;
    }
    if (batch == NULL || !PyObject_TypeCheck(batch, self->records_type) ||
        !takes_more((BatchRecords *)batch)) {
        goto decline; /* an empty queue, or its last batch takes no more */
    }
    if (measure_record((BatchRecords *)batch, stamp, key, value, Py_None, &rec) < 0) {
        PyErr_Clear(); /* a timestamp out of int64: the Python path says so */
        goto decline;
    }
    if (rec.timestamp < 0) {
        goto decline;
    }
    appended = append_record((BatchRecords *)batch, future, &rec);
    if (appended < 0) {
        goto error;
    }
    if (appended == 0) {
        goto decline; /* full: the Python path closes it and opens a new batch */
    }
    Py_DECREF(stamp);
    Py_DECREF(partition_obj);
    return batch;

decline:
    Py_XDECREF(stamp);
    Py_XDECREF(batch);
    Py_DECREF(partition_obj);
    Py_RETURN_NONE;
error:
    Py_XDECREF(stamp);
    Py_XDECREF(batch);
    Py_DECREF(partition_obj);
    return NULL;
}

/* The names of a ProducerRecord's fields, in send()'s order. */
static PyObject *record_field_names[6];
static PyObject *str_sinks;

/* What ProducerBatch.add_sink(first, results, slot, stop - slot) does, without its frame
 * (with keys, nearly every record is a run of its own): the run of records ``slot`` to
 * ``stop - 1`` of ``results`` went into ``batch`` from its record ``first`` on, so
 * ``(first, results, slot, count)`` goes at the end of ``batch.sinks`` (a list, made if
 * it is None). */
static int
end_run(PyObject *batch, Py_ssize_t first, PyObject *results, Py_ssize_t slot, Py_ssize_t stop)
{
    PyObject *sinks = PyObject_GetAttr(batch, str_sinks), *sink;
    int appended;
    if (sinks == Py_None) {
        Py_DECREF(sinks);
        sinks = PyList_New(0);
        if (sinks != NULL && PyObject_SetAttr(batch, str_sinks, sinks) < 0) {
            Py_CLEAR(sinks);
        }
    }
    if (sinks == NULL) {
        return -1;
    }
    sink = Py_BuildValue("(nOnn)", first, results, slot, stop - slot);
    appended = sink == NULL ? -1 : PyList_Append(sinks, sink);
    Py_XDECREF(sink);
    Py_DECREF(sinks);
    return appended;
}

/* send_batch()'s loop, for as long as the records need no Python code: each record from
 * ``iterator`` (a tuple of send()'s first 2 to 6 arguments, or an instance of exactly
 * ``record_type``, ProducerRecord) is appended as append() does, with no future; it gets
 * a slot (None) at the end of ``results``, its batch is a key of ``batches``, and each
 * run of records in one batch reports to its slots (ProducerBatch.add_sink) before this
 * returns. Returns None when the iterator is exhausted, or (record,) for the first record
 * it did not take, with no slot: send_batch()'s Python path takes that one (and fails
 * alone a record_type instance whose fields cannot be read). On an error (what the
 * iterator raised), ``results`` holds exactly the slots of the records appended. */
static PyObject *
appender_append_each(Appender *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *iterator, *results, *batches, *record_type, *outcome = NULL;
    PyObject *run = NULL; /* the current run's batch (owned) */
    Py_ssize_t run_first = 0, run_slot = 0, slot;
    Py_ssize_t taken = 0; /* the slots of records appended, to here */

    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError,
                     "append_each() takes 4 arguments (records, results, batches, "
                     "record_type), %zd given",
                     nargs);
        return NULL;
    }
    iterator = args[0];
    results = args[1];
    batches = args[2];
    record_type = args[3];
    if (!PyIter_Check(iterator) || !PyList_CheckExact(results) || !PyDict_CheckExact(batches) ||
        !PyType_Check(record_type)) {
        PyErr_SetString(PyExc_TypeError,
                        "append_each() takes an iterator, a list, a dict and a type");
        return NULL;
    }
    for (;;) {
        PyObject *record, *batch, *fields[6], *owned[6] = {NULL};
        Py_ssize_t size = 0, i;
        record = PyIter_Next(iterator);
        if (record == NULL) {
            if (PyErr_Occurred()) {
                goto error;
            }
            outcome = Py_NewRef(Py_None);
            break;
        }
        if (PyTuple_CheckExact(record)) {
            size = PyTuple_Size(record);
        }
        if (size >= 2 && size <= 6) {
            for (i = 0; i < 6; i++) {
                /* borrowed: the record holds them */
                fields[i] = i < size ? PyTuple_GetItem(record, i) : Py_None;
            }
        }
        else if ((PyObject *)Py_TYPE(record) == record_type) {
            for (i = 0; i < 6; i++) {
                owned[i] = PyObject_GetAttr(record, record_field_names[i]);
                if (owned[i] == NULL) {
                    break;
                }
                fields[i] = owned[i];
            }
            if (i < 6) {
                /* A field left unset: the Python path fails that record alone
                 * (InvalidProducerRecordError), it does not end the call. */
                for (i = 0; i < 6; i++) {
                    Py_XDECREF(owned[i]);
                }
                if (!PyErr_ExceptionMatches(PyExc_Exception)) {
                    Py_DECREF(record);
                    goto error; /* MemoryError aside, nothing to hand back for */
                }
                PyErr_Clear();
                outcome = PyTuple_Pack(1, record);
                Py_DECREF(record);
                if (outcome == NULL) {
                    goto error;
                }
                break;
            }
        }
        else {
            outcome = PyTuple_Pack(1, record); /* the Python path says what is wrong */
            Py_DECREF(record);
            if (outcome == NULL) {
                goto error;
            }
            break;
        }
        /* Its slot first: a record appended must have one. */
        slot = PyList_Size(results);
        if (slot < 0 || PyList_Append(results, Py_None) < 0) {
            batch = NULL;
            slot = -1; /* no slot to take back */
        }
        else {
            batch = append_fields(self, fields, Py_None);
        }
        for (i = 0; i < 6; i++) {
            Py_XDECREF(owned[i]);
        }
        if (batch == Py_None) { /* not taken: no slot */
            Py_DECREF(batch);
            batch = NULL;
            if (PyList_SetSlice(results, slot, slot + 1, NULL) == 0) {
                outcome = PyTuple_Pack(1, record);
            }
        }
        else if (batch == NULL && slot >= 0) {
            /* Failed, appending nothing: no slot either, so that the results hold one
             * per record taken when send_batch() reports this error with them. */
            PyObject *type, *value, *traceback;
            PyErr_Fetch(&type, &value, &traceback);
            if (PyList_SetSlice(results, slot, slot + 1, NULL) < 0) {
                PyErr_Clear();
            }
            PyErr_Restore(type, value, traceback);
        }
        Py_DECREF(record);
        if (batch == NULL) {
            if (outcome == NULL) {
                goto error;
            }
            break;
        }
        taken = slot + 1;
        if (batch == run) {
            Py_DECREF(batch);
            continue;
        }
        if (run != NULL && end_run(run, run_first, results, run_slot, slot) < 0) {
            Py_DECREF(batch);
            goto error;
        }
        REPLACE(run, batch);
        run_first = ((BatchRecords *)batch)->count - 1;
        run_slot = slot;
        if (PyDict_SetItem(batches, batch, Py_None) < 0) {
            goto error;
        }
    }
    if (run != NULL) {
        if (end_run(run, run_first, results, run_slot, taken) < 0) {
            Py_CLEAR(outcome);
        }
        Py_DECREF(run);
    }
    return outcome;
error:
    /* The records appended are in their batches whatever happens now: the run still
     * gets its sink, so that its batch completes them as every other. */
    if (run != NULL) {
        PyObject *type, *value, *traceback;
        PyErr_Fetch(&type, &value, &traceback);
        if (end_run(run, run_first, results, run_slot, taken) < 0) {
            PyErr_Clear();
        }
        PyErr_Restore(type, value, traceback);
        Py_DECREF(run);
    }
    return NULL;
}

/* ------------------------------------------------------------------ send() in C */

/* appender.send(topic, value=None, key=None, partition=None, timestamp_ms=None,
 * headers=None, on_delivery=None) is Producer.send while the producer has an Appender: it
 * returns a SendCall, an awaitable that behaves as the coroutine Producer.send would
 * (nothing happens until it is awaited; awaited, it returns the record's future) without
 * a Python frame for the records append() takes. Awaited, it takes append()'s shortcut
 * once; any record the shortcut declines, and every record while the producer is not
 * running, goes to ``python_send`` (the coroutine), which the SendCall then drives to its
 * end as ``await`` would, forwarding send(), throw() and close().
 *
 * It registers as a collections.abc.Coroutine (asyncproducer._staging), so that
 * asyncio.create_task() and trio's start_soon() take it. Dropped without being awaited,
 * it warns as a coroutine does: its record was never sent. */

enum { CALL_NEW, CALL_RUNNING, CALL_DELEGATING, CALL_DONE };

#define SEND_ARGS 7 /* topic, value, key, partition, timestamp_ms, headers, on_delivery */

typedef struct {
    PyObject_HEAD
    Appender *appender;
    PyObject *args[SEND_ARGS];
    PyObject *inner; /* python_send's coroutine, while the SendCall drives it */
    int state;
} SendCall;

static PyObject *send_arg_names[SEND_ARGS];
static PyObject *str_add_hooks, *str_throw, *str_close;

static int
send_call_traverse(SendCall *self, visitproc visit, void *arg)
{
    int i;
    Py_VISIT(Py_TYPE((PyObject *)self));
    Py_VISIT(self->appender);
    for (i = 0; i < SEND_ARGS; i++) {
        Py_VISIT(self->args[i]);
    }
    Py_VISIT(self->inner);
    return 0;
}

static int
send_call_clear(SendCall *self)
{
    int i;
    self->state = CALL_DONE; /* what it would run is gone */
    Py_CLEAR(self->appender);
    for (i = 0; i < SEND_ARGS; i++) {
        Py_CLEAR(self->args[i]);
    }
    Py_CLEAR(self->inner);
    return 0;
}

/* As CPython warns of a coroutine never awaited: the record was never sent. Called by
 * the garbage collector (before it clears a reference cycle) and by dealloc. */
static void
send_call_finalize(SendCall *self)
{
    PyObject *type, *value, *traceback;
    if (self->state != CALL_NEW || self->args[0] == NULL) {
        return;
    }
    self->state = CALL_DONE; /* warned once */
    PyErr_Fetch(&type, &value, &traceback);
    if (PyErr_WarnFormat(PyExc_RuntimeWarning, 1,
                         "Producer.send(%R, ...) was never awaited: its record was not sent",
                         self->args[0]) < 0) {
        PyErr_WriteUnraisable(self->args[0]);
    }
    PyErr_Restore(type, value, traceback);
}

static void
send_call_dealloc(SendCall *self)
{
    PyTypeObject *type = Py_TYPE((PyObject *)self);
    freefunc free_self = (freefunc)PyType_GetSlot(type, Py_tp_free);
    PyObject_GC_UnTrack(self);
    send_call_finalize(self);
    send_call_clear(self);
    free_self(self);
    Py_DECREF(type);
}

/* Drive python_send's coroutine one step. */
static PySendResult
send_call_delegate(SendCall *self, PyObject *arg, PyObject **result)
{
    PySendResult status;
    self->state = CALL_RUNNING;
    status = PyIter_Send(self->inner, arg, result);
    if (status == PYGEN_NEXT) {
        self->state = CALL_DELEGATING;
    }
    else {
        self->state = CALL_DONE;
        Py_CLEAR(self->inner);
    }
    return status;
}

/* The first step: append()'s shortcut, or else the start of python_send's coroutine. */
static PySendResult
send_call_start(SendCall *self, PyObject **result)
{
    Appender *appender = self->appender;
    PyObject *on_delivery = self->args[SEND_ARGS - 1];
    PyObject *args;
    if (appender->open && appender->new_future != NULL) {
        PyObject *future = PyObject_CallNoArgs(appender->new_future), *batch;
        if (future == NULL) {
            return PYGEN_ERROR;
        }
        batch = append_fields(appender, self->args, future);
        if (batch != NULL && batch != Py_None) {
            if (on_delivery != Py_None) {
                PyObject *done = PyObject_CallMethodObjArgs(batch, str_add_hooks, on_delivery,
                                                            Py_None, NULL);
                Py_XDECREF(done);
                if (done == NULL) {
                    Py_CLEAR(future);
                }
            }
            Py_DECREF(batch);
            *result = future;
            return future == NULL ? PYGEN_ERROR : PYGEN_RETURN;
        }
        Py_DECREF(future); /* the Python path makes its own */
        if (batch == NULL) {
            return PYGEN_ERROR;
        }
        Py_DECREF(batch);
    }
    if (appender->python_send == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Appender.send() has no python_send");
        return PYGEN_ERROR;
    }
    args = PyTuple_New(SEND_ARGS);
    if (args == NULL) {
        return PYGEN_ERROR;
    }
    for (int i = 0; i < SEND_ARGS; i++) {
        PyTuple_SetItem(args, i, Py_NewRef(self->args[i])); /* steals; cannot fail */
    }
    self->inner = PyObject_Call(appender->python_send, args, NULL);
    Py_DECREF(args);
    if (self->inner == NULL) {
        return PYGEN_ERROR;
    }
    return send_call_delegate(self, Py_None, result);
}

static PySendResult
send_call_am_send(SendCall *self, PyObject *arg, PyObject **result)
{
    PySendResult status;
    *result = NULL;
    switch (self->state) {
    case CALL_NEW:
        if (arg != Py_None) {
            PyErr_SetString(PyExc_TypeError,
                            "can't send non-None value to a just-started send()");
            return PYGEN_ERROR;
        }
        self->state = CALL_RUNNING;
        status = send_call_start(self, result);
        if (status != PYGEN_NEXT) {
            self->state = CALL_DONE;
        }
        return status;
    case CALL_DELEGATING:
        return send_call_delegate(self, arg, result);
    case CALL_RUNNING:
        PyErr_SetString(PyExc_ValueError, "send() already executing");
        return PYGEN_ERROR;
    default:
        PyErr_SetString(PyExc_RuntimeError, "cannot reuse already awaited send()");
        return PYGEN_ERROR;
    }
}

/* What a generator's send() gives for a step: the value yielded, or StopIteration
 * carrying the value returned. */
static PyObject *
step_result(PySendResult status, PyObject *result)
{
    PyObject *stop;
    if (status != PYGEN_RETURN) {
        return result; /* yielded, or NULL with the exception */
    }
    stop = PyObject_CallFunctionObjArgs(PyExc_StopIteration, result, NULL);
    Py_DECREF(result);
    if (stop != NULL) {
        PyErr_SetObject(PyExc_StopIteration, stop);
        Py_DECREF(stop);
    }
    return NULL;
}

static PyObject *
send_call_send(SendCall *self, PyObject *arg)
{
    PyObject *result;
    PySendResult status = send_call_am_send(self, arg, &result);
    return step_result(status, result);
}

static PyObject *
send_call_next(SendCall *self)
{
    return send_call_send(self, Py_None);
}

static PyObject *
send_call_await(SendCall *self)
{
    return Py_NewRef((PyObject *)self);
}

/* The exception that throw(exc) or throw(type[, value[, traceback]]) means, as a
 * coroutine's throw() reads its arguments; a new reference, or NULL. */
static PyObject *
thrown_exception(PyObject *args)
{
    PyObject *type, *value = Py_None, *traceback = Py_None, *exc;
    if (!PyArg_UnpackTuple(args, "throw", 1, 3, &type, &value, &traceback)) {
        return NULL;
    }
    if (PyExceptionInstance_Check(type)) {
        if (value != Py_None) {
            PyErr_SetString(PyExc_TypeError, "instance exception may not have a separate value");
            return NULL;
        }
        exc = Py_NewRef(type);
    }
    else if (PyExceptionClass_Check(type)) {
        if (PyObject_IsInstance(value, type) == 1) {
            exc = Py_NewRef(value);
        }
        else if (value == Py_None) {
            exc = PyObject_CallNoArgs(type);
        }
        else if (PyTuple_Check(value)) {
            exc = PyObject_CallObject(type, value);
        }
        else {
            exc = PyObject_CallFunctionObjArgs(type, value, NULL);
        }
        if (exc == NULL) {
            return NULL;
        }
    }
    else {
        PyErr_SetString(PyExc_TypeError,
                        "exceptions must be classes or instances deriving from BaseException");
        return NULL;
    }
    if (traceback != Py_None && PyException_SetTraceback(exc, traceback) < 0) {
        Py_DECREF(exc);
        return NULL;
    }
    return exc;
}

/* throw(): into python_send's coroutine while the SendCall drives it (as one exception:
 * the three-argument form is deprecated since Python 3.12, and CPython's own await
 * passes on a throw() in that form); before that the exception is raised here and the
 * SendCall is done, as a coroutine that was never started. */
static PyObject *
send_call_throw(SendCall *self, PyObject *args)
{
    PyObject *exc, *result;
    if (self->state == CALL_RUNNING) {
        PyErr_SetString(PyExc_ValueError, "send() already executing");
        return NULL;
    }
    exc = thrown_exception(args);
    if (exc == NULL) {
        return NULL;
    }
    if (self->state != CALL_DELEGATING) {
        self->state = CALL_DONE;
        PyErr_SetObject((PyObject *)Py_TYPE(exc), exc);
        Py_DECREF(exc);
        return NULL;
    }
    self->state = CALL_RUNNING;
    result = PyObject_CallMethodObjArgs(self->inner, str_throw, exc, NULL);
    Py_DECREF(exc);
    if (result == NULL) {
        self->state = CALL_DONE;
        Py_CLEAR(self->inner);
    }
    else {
        self->state = CALL_DELEGATING;
    }
    return result;
}

static PyObject *
send_call_close(SendCall *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *inner = self->inner, *done;
    if (self->state == CALL_RUNNING) {
        PyErr_SetString(PyExc_ValueError, "send() already executing");
        return NULL;
    }
    self->state = CALL_DONE;
    if (inner == NULL) {
        Py_RETURN_NONE;
    }
    self->inner = NULL;
    done = PyObject_CallMethodObjArgs(inner, str_close, NULL);
    Py_DECREF(inner);
    return done;
}

static PyMethodDef send_call_methods[] = {
    {"send", (PyCFunction)send_call_send, METH_O,
     "send(value, /)\n--\n\nAs a coroutine's send(): the next step."},
    {"throw", (PyCFunction)send_call_throw, METH_VARARGS,
     "throw(exc, /) or throw(type, value=None, traceback=None, /)\n--\n\n"
     "As a coroutine's throw()."},
    {"close", (PyCFunction)send_call_close, METH_NOARGS,
     "close()\n--\n\nAs a coroutine's close()."},
    {NULL, NULL, 0, NULL},
};

static PyType_Slot send_call_slots[] = {
    {Py_tp_doc, "What Producer.send() returns with the C extension: awaited, it enqueues\n"
                "the record and returns its future, as the coroutine would."},
    {Py_tp_dealloc, send_call_dealloc},
    {Py_tp_finalize, send_call_finalize},
    {Py_tp_traverse, send_call_traverse},
    {Py_tp_clear, send_call_clear},
    {Py_tp_iternext, send_call_next},
    {Py_tp_methods, send_call_methods},
    {Py_am_await, send_call_await},
    {Py_am_send, send_call_am_send},
    {0, NULL},
};

static PyType_Spec send_call_spec = {
    "asyncproducer._speedups.SendCall",
    sizeof(SendCall),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    send_call_slots,
};

/* appender.send(...): a new SendCall holding the arguments (None for those not given). */
static PyObject *
appender_send(Appender *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    PyObject *given[SEND_ARGS] = {NULL};
    Py_ssize_t nkw = kwnames == NULL ? 0 : PyTuple_Size(kwnames), i, j;
    SendCall *call;
    if (nargs > SEND_ARGS) {
        PyErr_Format(PyExc_TypeError, "send() takes at most %d arguments (%zd given)",
                     SEND_ARGS, nargs + nkw);
        return NULL;
    }
    for (i = 0; i < nargs; i++) {
        given[i] = args[i];
    }
    for (i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GetItem(kwnames, i); /* borrowed; in range */
        for (j = 0; j < SEND_ARGS && name != send_arg_names[j]; j++) {
        }
        if (j == SEND_ARGS) { /* not interned: compare the text */
            for (j = 0; j < SEND_ARGS; j++) {
                int order = PyUnicode_Compare(name, send_arg_names[j]);
                if (order == -1 && PyErr_Occurred()) {
                    return NULL;
                }
                if (order == 0) {
                    break;
                }
            }
        }
        if (j == SEND_ARGS) {
            PyErr_Format(PyExc_TypeError, "send() got an unexpected keyword argument %R", name);
            return NULL;
        }
        if (given[j] != NULL) {
            PyErr_Format(PyExc_TypeError, "send() got multiple values for argument %R", name);
            return NULL;
        }
        given[j] = args[nargs + i];
    }
    if (given[0] == NULL) {
        PyErr_SetString(PyExc_TypeError, "send() missing required argument 'topic'");
        return NULL;
    }
    if (self->send_call_alloc == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the Appender is not initialized");
        return NULL;
    }
    call = (SendCall *)self->send_call_alloc(self->send_call_type, 0);
    if (call == NULL) {
        return NULL;
    }
    call->appender = (Appender *)Py_NewRef((PyObject *)self);
    for (i = 0; i < SEND_ARGS; i++) {
        call->args[i] = Py_NewRef(given[i] != NULL ? given[i] : Py_None);
    }
    call->state = CALL_NEW;
    return (PyObject *)call;
}

static PyMethodDef appender_methods[] = {
    {"append", (PyCFunction)(void (*)(void))appender_append, METH_FASTCALL,
     "append(topic, value, key, partition, timestamp_ms, headers, future, /)\n--\n\n"
     "The batch the record went into, or None, having changed nothing, when the record\n"
     "needs send()'s Python path."},
    {"append_each", (PyCFunction)(void (*)(void))appender_append_each, METH_FASTCALL,
     "append_each(records, results, batches, record_type, /)\n--\n\n"
     "send_batch()'s loop while its records need no Python code: None when ``records``\n"
     "(an iterator) is exhausted, else (record,), the first record it did not take."},
    {"send", (PyCFunction)(void (*)(void))appender_send, METH_FASTCALL | METH_KEYWORDS,
     "send(topic, value=None, key=None, partition=None, timestamp_ms=None, headers=None,\n"
     "     on_delivery=None)\n--\n\n"
     "Producer.send, with the C extension: returns an awaitable that, awaited, enqueues\n"
     "the record and returns its future (see SendCall)."},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef appender_members[] = {
    {"new_future", T_OBJECT, offsetof(Appender, new_future), 0,
     "send(): the running event loop's future factory."},
    {"python_send", T_OBJECT, offsetof(Appender, python_send), 0,
     "send(): the coroutine function for the records append() declines."},
    {"open", T_BOOL, offsetof(Appender, open), 0,
     "send(): whether the producer is running (else every record goes to python_send)."},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot appender_slots[] = {
    {Py_tp_doc, "send()'s synchronous step in C for a record that needs no Python code (see\n"
                "asyncproducer._staging)."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, appender_init},
    {Py_tp_dealloc, appender_dealloc},
    {Py_tp_traverse, appender_traverse},
    {Py_tp_clear, appender_clear},
    {Py_tp_methods, appender_methods},
    {Py_tp_members, appender_members},
    {0, NULL},
};

static PyType_Spec appender_spec = {
    "asyncproducer._speedups.Appender",
    sizeof(Appender),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    appender_slots,
};

/* ------------------------------------------------------------------ module */

static int
intern(PyObject **slot, const char *text)
{
    if (*slot == NULL) {
        *slot = PyUnicode_InternFromString(text);
    }
    return *slot == NULL ? -1 : 0;
}

/* Add the type made from ``spec`` to the module; a new reference to it, or NULL. */
static PyObject *
add_type(PyObject *module, PyType_Spec *spec)
{
    PyObject *type = PyType_FromModuleAndSpec(module, spec, NULL);
    if (type == NULL) {
        return NULL;
    }
    if (PyModule_AddObjectRef(module, strrchr(spec->name, '.') + 1, type) < 0) {
        Py_DECREF(type);
        return NULL;
    }
    return type;
}

static int
speedups_exec(PyObject *module)
{
    ModuleState *state = (ModuleState *)PyModule_GetState(module);
    PyObject *appender;
    if (state == NULL) {
        return -1;
    }
    if (intern(&str_snapshot, "snapshot") < 0 || intern(&str_topics, "topics") < 0 ||
        intern(&str_partitions, "partitions") < 0 ||
        intern(&str_error_code, "error_code") < 0 || intern(&str_new, "__new__") < 0 ||
        intern(&record_field_names[0], "topic") < 0 ||
        intern(&record_field_names[1], "value") < 0 ||
        intern(&record_field_names[2], "key") < 0 ||
        intern(&record_field_names[3], "partition") < 0 ||
        intern(&record_field_names[4], "timestamp_ms") < 0 ||
        intern(&record_field_names[5], "headers") < 0 ||
        intern(&str_add_hooks, "add_hooks") < 0 || intern(&str_throw, "throw") < 0 ||
        intern(&str_close, "close") < 0 || intern(&send_arg_names[6], "on_delivery") < 0 ||
        intern(&str_sinks, "sinks") < 0) {
        return -1;
    }
    for (int i = 0; i < 6; i++) {
        send_arg_names[i] = record_field_names[i]; /* the same names, first */
    }
    /* A static type's slot: PyType_GetSlot reads those since Python 3.10. */
    tuple_new = (newfunc)PyType_GetSlot(&PyTuple_Type, Py_tp_new);
    if (tuple_new == NULL) {
        PyErr_SetString(PyExc_SystemError, "tuple has no tp_new");
        return -1;
    }
    state->records_type = (PyTypeObject *)add_type(module, &records_spec); /* kept */
    if (state->records_type == NULL) {
        return -1;
    }
    state->send_call_type = (PyTypeObject *)add_type(module, &send_call_spec); /* kept */
    if (state->send_call_type == NULL) {
        return -1;
    }
    appender = add_type(module, &appender_spec);
    if (appender == NULL) {
        return -1;
    }
    Py_DECREF(appender);
    return 0;
}

static int
speedups_traverse(PyObject *module, visitproc visit, void *arg)
{
    ModuleState *state = (ModuleState *)PyModule_GetState(module);
    if (state != NULL) {
        Py_VISIT(state->records_type);
        Py_VISIT(state->send_call_type);
    }
    return 0;
}

static int
speedups_clear(PyObject *module)
{
    ModuleState *state = (ModuleState *)PyModule_GetState(module);
    if (state != NULL) {
        Py_CLEAR(state->records_type);
        Py_CLEAR(state->send_call_type);
    }
    return 0;
}

static void
speedups_free(void *module)
{
    speedups_clear((PyObject *)module);
}

static PyMethodDef speedups_methods[] = {
    {"fill_sinks", (PyCFunction)(void (*)(void))speedups_fill_sinks, METH_FASTCALL,
     "fill_sinks(sinks, outcomes, /)\n--\n\n"
     "For each (first, results, slot, count) of sinks: results[slot:slot + count] =\n"
     "outcomes[first:first + count]. Returns how many outcomes that reported."},
    {"murmur2", (PyCFunction)speedups_murmur2, METH_O,
     "murmur2(data, /)\n--\n\n"
     "Java's Utils.murmur2 of data, as an unsigned 32-bit int (the Appender's key hash;\n"
     "asyncproducer.partitioners._murmur2_u32 is the reference)."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot speedups_slots[] = {
    {Py_mod_exec, speedups_exec},
    {0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "asyncproducer._speedups",
    "send()'s per-record work in C (optional: asyncproducer falls back to Python).",
    sizeof(ModuleState),
    speedups_methods,
    speedups_slots,
    speedups_traverse,
    speedups_clear,
    speedups_free,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
