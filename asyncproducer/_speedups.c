/* asyncproducer._speedups: the records of a batch encoded in C, in one pass.
 *
 * encode_pending(base_timestamp, pending) -> (records, timestamps, key_sizes, value_sizes)
 *
 * The reference, and the fallback where this module did not build, is
 * asyncproducer.protocol.encoding.encode_pending_py; the results are the same for every
 * valid input (tests/unit/test_speedups.py checks it). Each item of ``pending`` is
 * (timestamp, key, value, headers, key_size, value_size); see Pending in encoding.py.
 *
 * Each record is Kafka's record format v2: length, attributes (0), timestampDelta,
 * offsetDelta, key length, key, value length, value, header count, headers; every integer
 * a zigzag varint (64-bit, as the Python encoder writes them), -1 for a null key or value.
 *
 * Written against the Limited API (Python 3.11): documented, stable functions only.
 *
 * Memory safety: the encoder keeps borrowed pointers (to keys, values and header items)
 * between its measuring pass and its writing pass, so no Python code may run in between
 * (it could change a list being read). It only makes type checks (tuple, list, bytes,
 * str, int and their subclasses; no __index__, __len__ or __iter__ is called), and after
 * the first item is read it allocates only memory and bytes objects, which the garbage
 * collector does not track, so no collection (no finalizer) can start. The result
 * tuples, which it does track, are allocated before anything is read. Error paths may
 * run Python code (an exception's repr), after which nothing borrowed is used.
 */

#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030B0000
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

/* What the measuring pass learns about a record, for the writing pass. */
typedef struct {
    uint64_t delta;       /* zigzag timestamp delta */
    const char *key;      /* NULL for a null key */
    Py_ssize_t key_len;
    const char *value;    /* NULL for a null value */
    Py_ssize_t value_len;
    PyObject *headers;    /* borrowed; NULL when the record has no headers */
    size_t body;          /* bytes of the record after its length prefix */
} Record;

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

/* A bytes or None field: data pointer (NULL for None) and length. */
static int
bytes_or_none(PyObject *obj, const char **data, Py_ssize_t *len, const char *what,
              Py_ssize_t record)
{
    char *buf;
    if (obj == Py_None) {
        *data = NULL;
        *len = -1;
        return 0;
    }
    if (!IS_BYTES(obj)) {
        raise_not(PyExc_TypeError, obj, "pending[%zd]: %s must be bytes or None", record,
                  what);
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
header_fields(PyObject *header, Py_ssize_t record, Py_ssize_t index, const char **name,
              Py_ssize_t *name_len, const char **value, Py_ssize_t *value_len)
{
    PyObject *key, *val;
    Py_ssize_t n;
    if (!is_seq(header)) {
        raise_not(PyExc_TypeError, header,
                  "pending[%zd]: header %zd must be a (str, bytes | None) tuple or list",
                  record, index);
        return -1;
    }
    n = seq_size(header);
    if (n != 2) {
        PyErr_Format(PyExc_ValueError,
                     "pending[%zd]: header %zd must be a (key, value) pair, got %zd items",
                     record, index, n);
        return -1;
    }
    key = seq_item(header, 0);
    val = seq_item(header, 1);
    if (!IS_STR(key)) {
        raise_not(PyExc_TypeError, key, "pending[%zd]: header %zd key must be str", record,
                  index);
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
        raise_not(PyExc_TypeError, val, "pending[%zd]: header %zd value must be bytes or None",
                  record, index);
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
headers_size(PyObject *headers, Py_ssize_t record, size_t *size)
{
    Py_ssize_t count = seq_size(headers), i;
    size_t total = varint_size((uint64_t)count << 1);
    for (i = 0; i < count; i++) {
        const char *name, *value;
        Py_ssize_t name_len, value_len;
        if (header_fields(seq_item(headers, i), record, i, &name, &name_len, &value,
                          &value_len) < 0) {
            return -1;
        }
        ADD_SIZE(total, field_size(name, name_len));
        ADD_SIZE(total, field_size(value, value_len));
    }
    *size = total;
    return 0;
}

static char *
put_headers(char *out, PyObject *headers, Py_ssize_t record)
{
    Py_ssize_t count = seq_size(headers), i;
    out = put_varint(out, (uint64_t)count << 1);
    for (i = 0; i < count; i++) {
        const char *name, *value;
        Py_ssize_t name_len, value_len;
        /* Validated by the measuring pass, and nothing can have changed since. */
        if (header_fields(seq_item(headers, i), record, i, &name, &name_len, &value,
                          &value_len) < 0) {
            return NULL;
        }
        out = put_field(out, name, name_len);
        out = put_field(out, value, value_len);
    }
    return out;
}

static int
int64_of(PyObject *obj, int64_t *out, const char *what, Py_ssize_t record)
{
    int overflow;
    long long value;
    if (!IS_INT(obj)) {
        if (record < 0) {
            raise_not(PyExc_TypeError, obj, "%s must be int", what);
        }
        else {
            raise_not(PyExc_TypeError, obj, "pending[%zd]: %s must be int", record, what);
        }
        return -1;
    }
    value = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow) {
        /* ValueError, as the Python encoder raises for a delta outside int64. */
        if (record < 0) {
            PyErr_Format(PyExc_ValueError, "%s %R does not fit in a signed 64-bit integer",
                         what, obj);
        }
        else {
            PyErr_Format(PyExc_ValueError,
                         "pending[%zd]: %s %R does not fit in a signed 64-bit integer", record,
                         what, obj);
        }
        return -1;
    }
    if (value == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = (int64_t)value;
    return 0;
}

/* The measuring pass over one record: validate it, fill ``rec``, take its timestamp and
 * sizes into the result tuples, and return its encoded size (length prefix included). */
static int
measure_record(PyObject *item, Py_ssize_t i, int64_t base, Record *rec, PyObject *timestamps,
               PyObject *key_sizes, PyObject *value_sizes, size_t *size)
{
    PyObject *ts_obj, *headers, *key_size, *value_size;
    int64_t ts, delta;
    size_t body;
    Py_ssize_t n;

    if (!is_seq(item)) {
        raise_not(PyExc_TypeError, item,
                  "pending[%zd] must be a (timestamp, key, value, headers, key_size, "
                  "value_size) tuple",
                  i);
        return -1;
    }
    n = seq_size(item);
    if (n != 6) {
        PyErr_Format(PyExc_ValueError,
                     "pending[%zd] must have 6 items (timestamp, key, value, headers, "
                     "key_size, value_size), got %zd",
                     i, n);
        return -1;
    }
    ts_obj = seq_item(item, 0);
    key_size = seq_item(item, 4);
    value_size = seq_item(item, 5);
    if (int64_of(ts_obj, &ts, "timestamp", i) < 0) {
        return -1;
    }
    if (!IS_INT(key_size) || !IS_INT(value_size)) {
        PyObject *bad = IS_INT(key_size) ? value_size : key_size;
        raise_not(PyExc_TypeError, bad, "pending[%zd]: %s must be int", i,
                  bad == key_size ? "key_size" : "value_size");
        return -1;
    }
    /* ts - base in int64, or ValueError as the Python encoder raises. */
    if ((base < 0 && ts > INT64_MAX + base) || (base > 0 && ts < INT64_MIN + base)) {
        PyErr_Format(PyExc_ValueError,
                     "pending[%zd]: the delta of timestamp %R from base_timestamp %lld "
                     "does not fit in a signed 64-bit varlong",
                     i, ts_obj, (long long)base);
        return -1;
    }
    delta = ts - base;
    rec->delta = zigzag(delta);
    if (bytes_or_none(seq_item(item, 1), &rec->key, &rec->key_len, "key", i) < 0 ||
        bytes_or_none(seq_item(item, 2), &rec->value, &rec->value_len, "value", i) < 0) {
        return -1;
    }

    headers = seq_item(item, 3);
    body = 1 + varint_size(rec->delta) + varint_size((uint64_t)i << 1);
    body += field_size(rec->key, rec->key_len);
    ADD_SIZE(body, field_size(rec->value, rec->value_len));
    if (headers == Py_None) {
        /* As the Python encoder, which tests headers for truth: no headers. */
        rec->headers = NULL;
        body += 1;
    }
    else if (!is_seq(headers)) {
        raise_not(PyExc_TypeError, headers,
                  "pending[%zd]: headers must be a tuple or list of (str, bytes | None) pairs",
                  i);
        return -1;
    }
    else if (seq_size(headers) == 0) {
        rec->headers = NULL;
        body += 1; /* a header count of 0 */
    }
    else {
        size_t hsize;
        if (headers_size(headers, i, &hsize) < 0) {
            return -1;
        }
        rec->headers = headers;
        ADD_SIZE(body, hsize);
    }
    rec->body = body;
    *size = varint_size((uint64_t)body << 1) + body;

    /* PyTuple_SetItem steals the reference, even when it fails (it cannot here: the
     * tuples are new and i is in range). */
    Py_INCREF(ts_obj);
    Py_INCREF(key_size);
    Py_INCREF(value_size);
    if (PyTuple_SetItem(timestamps, i, ts_obj) < 0 ||
        PyTuple_SetItem(key_sizes, i, key_size) < 0 ||
        PyTuple_SetItem(value_sizes, i, value_size) < 0) {
        return -1;
    }
    return 0;
}

static int
measure(PyObject *pending, Py_ssize_t count, int64_t base, Record *recs, PyObject *timestamps,
        PyObject *key_sizes, PyObject *value_sizes, size_t *total)
{
    Py_ssize_t i;
    size_t sum = 0;
    for (i = 0; i < count; i++) {
        size_t size;
        if (measure_record(seq_item(pending, i), i, base, &recs[i], timestamps, key_sizes,
                           value_sizes, &size) < 0) {
            return -1;
        }
        ADD_SIZE(sum, size);
    }
    *total = sum;
    return 0;
}

static PyObject *
encode_pending(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *pending, *timestamps = NULL, *key_sizes = NULL, *value_sizes = NULL;
    PyObject *records = NULL, *result = NULL;
    Record *recs = NULL;
    Py_ssize_t count, i;
    int64_t base;
    size_t total;
    char *out, *start;

    (void)module;
    if (nargs != 2) {
        PyErr_Format(PyExc_TypeError,
                     "encode_pending() takes 2 arguments (base_timestamp, pending), %zd given",
                     nargs);
        return NULL;
    }
    if (int64_of(args[0], &base, "base_timestamp", -1) < 0) {
        return NULL;
    }
    pending = args[1];
    if (!is_seq(pending)) {
        raise_not(PyExc_TypeError, pending, "pending must be a list or tuple");
        return NULL;
    }
    count = seq_size(pending);
    /* The tracked objects first (see the top of this file). */
    timestamps = PyTuple_New(count);
    key_sizes = PyTuple_New(count);
    value_sizes = PyTuple_New(count);
    if (timestamps == NULL || key_sizes == NULL || value_sizes == NULL) {
        goto done;
    }
    if (seq_size(pending) != count) {
        /* A finalizer run by a collection during those allocations changed the list. */
        PyErr_SetString(PyExc_RuntimeError, "pending changed size during encode_pending()");
        goto done;
    }
    if (count > 0) {
        if ((size_t)count > SIZE_MAX / sizeof(Record)) {
            PyErr_NoMemory();
            goto done;
        }
        recs = (Record *)PyMem_Malloc((size_t)count * sizeof(Record));
        if (recs == NULL) {
            PyErr_NoMemory();
            goto done;
        }
    }

    if (measure(pending, count, base, recs, timestamps, key_sizes, value_sizes, &total) < 0) {
        goto done;
    }
    records = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)total);
    if (records == NULL) {
        goto done;
    }
    out = start = PyBytes_AsString(records);
    if (out == NULL) {
        goto done;
    }
    for (i = 0; i < count; i++) {
        const Record *rec = &recs[i];
        out = put_varint(out, (uint64_t)rec->body << 1);
        *out++ = 0; /* attributes */
        out = put_varint(out, rec->delta);
        out = put_varint(out, (uint64_t)i << 1);
        out = put_field(out, rec->key, rec->key_len);
        out = put_field(out, rec->value, rec->value_len);
        if (rec->headers == NULL) {
            *out++ = 0;
        }
        else {
            out = put_headers(out, rec->headers, i);
            if (out == NULL) {
                goto done;
            }
        }
    }
    if ((size_t)(out - start) != total) {
        PyErr_SetString(PyExc_SystemError, "encode_pending(): measured and written sizes differ");
        goto done;
    }
    result = PyTuple_Pack(4, records, timestamps, key_sizes, value_sizes);

done:
    PyMem_Free(recs);
    Py_XDECREF(records);
    Py_XDECREF(timestamps);
    Py_XDECREF(key_sizes);
    Py_XDECREF(value_sizes);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"encode_pending", (PyCFunction)(void (*)(void))encode_pending, METH_FASTCALL,
     "encode_pending(base_timestamp, pending, /)\n--\n\n"
     "The records of a batch encoded back to back (offset deltas 0, 1, ...), and its\n"
     "records' timestamps, key sizes and value sizes: (records, timestamps, key_sizes,\n"
     "value_sizes). Each item of pending is (timestamp, key, value, headers, key_size,\n"
     "value_size). The C version of encoding.encode_pending_py."},
    {NULL, NULL, 0, NULL},
};

static PyModuleDef_Slot speedups_slots[] = {
    {0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    "asyncproducer._speedups",
    "The record encoder in C (optional: asyncproducer.protocol.encoding falls back to "
    "Python).",
    0,
    speedups_methods,
    speedups_slots,
    NULL,
    NULL,
    NULL,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
