/* asyncproducer._speedups, BatchRecords: the records of a batch being filled, each
 * validated, measured and encoded into a growing buffer as it is appended (Kafka's record
 * format v2); finish() hands back the encoded records, metadata() each record's
 * RecordMetadata at completion. The reference, and the fallback where this module did not
 * build, is asyncproducer.protocol.batch_records.PyBatchRecords: same results for every
 * input (tests/unit/test_batch_records.py). See _speedups.h.
 */

#include "_speedups.h"

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

/* ------------------------------------------------------------------ validation */

/* Raise ``exc`` with the formatted message followed by ", not <type of obj>". */
void
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
    Py_VISIT(self->sinks);
    return 0;
}

static int
records_clear(BatchRecords *self)
{
    Py_CLEAR(self->futures);
    Py_CLEAR(self->sinks);
    return 0;
}

static void
records_dealloc(BatchRecords *self)
{
    PyTypeObject *type = Py_TYPE((PyObject *)self);
    freefunc free_self = (freefunc)PyType_GetSlot(type, Py_tp_free);
    PyObject_GC_UnTrack(self);
    records_clear(self);
    Py_XDECREF(self->buf_owner);
    PyMem_Free(self->infos);
    free_self(self);
    Py_DECREF(type);
}

/* Validate and measure a record appended as record number ``self->count``. */
int
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
        /* In a bytearray, not a plain allocation: finish() can hand it over uncopied. */
        if (self->buf_owner == NULL) {
            self->buf_owner = PyByteArray_FromStringAndSize(NULL, (Py_ssize_t)cap);
            if (self->buf_owner == NULL) {
                return -1;
            }
        }
        else if (PyByteArray_Resize(self->buf_owner, (Py_ssize_t)cap) < 0) {
            return -1;
        }
        self->buf = PyByteArray_AsString(self->buf_owner);
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
int
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
    if ((Py_ssize_t)rec->size > self->max_record_size) {
        self->max_record_size = (Py_ssize_t)rec->size;
    }
    self->count++;
    return 1;
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
    if (self->buf_owner != NULL && self->records_size >= self->buf_cap - self->buf_cap / 8) {
        /* Nearly full (as a batch sealed for its size is): the bytearray itself, trimmed
         * to the records (no reallocation within an eighth), not a copy: copying 1 MiB
         * into fresh pages took the event loop ~0.3 ms, up to 4 ms. */
        if (PyByteArray_Resize(self->buf_owner, self->records_size) < 0) {
            return NULL;
        }
        records = self->buf_owner;
        self->buf_owner = NULL;
    }
    else {
        /* Copied to its size: the bytearray's slack would outlive the batch's wait. */
        records = PyBytes_FromStringAndSize(self->count ? self->buf : "", self->records_size);
        if (records == NULL) {
            return NULL;
        }
        Py_CLEAR(self->buf_owner);
    }
    /* The records live on in what is returned; the infos stay for metadata(). */
    self->full = 1;
    self->buf = NULL;
    self->buf_cap = 0;
    return records;
}

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
    Py_ssize_t offset;
    if (PyObject_GC_IsTracked(topic) || PyObject_GC_IsTracked(partition)) {
        return 0;
    }
    if (type == &PyTuple_Type) {
        return 1;
    }
    offset = dict_offset(type);
    return offset == -2 ? -1 : offset == 0;
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
    {"sinks", T_OBJECT, offsetof(BatchRecords, sinks), 0,
     "Where send_batch() records' results go: a list of (first, results, slot, count),\n"
     "or None (see ProducerBatch.add_sink)."},
    {"max_records_size", T_PYSSIZET, offsetof(BatchRecords, max_records_size), READONLY,
     "Encoded (uncompressed) record bytes that fit, unless a single record is larger."},
    {"records_size", T_PYSSIZET, offsetof(BatchRecords, records_size), READONLY,
     "Bytes of the records appended so far, encoded."},
    {"max_record_size", T_PYSSIZET, offsetof(BatchRecords, max_record_size), READONLY,
     "The largest record appended so far, encoded (0 before the first)."},
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

PyType_Spec records_spec = {
    "asyncproducer._speedups.BatchRecords",
    sizeof(BatchRecords),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    records_slots,
};
