/* asyncproducer._speedups: the per-record part of send() in C; this header is what its
 * files share (types, the module's interned strings, the declarations of what one file
 * calls in another, and the hot helpers as static inline).
 *
 * One concern a file:
 *   _speedups_records.c    BatchRecords: a batch's records, validated, measured and
 *                          encoded as they are appended; their metadata at completion
 *   _speedups_murmur2.c    Java's murmur2 (the key hash), alone
 *   _speedups_crc32c.c     CRC-32C, a record batch's checksum (hardware where the CPU has it)
 *   _speedups_appender.c   Appender: send()'s synchronous step and send_batch()'s loop in
 *                          C, and the sinks that loop leaves (fill_sinks)
 *   _speedups_send_call.c  SendCall: send() in C, the awaitable Appender.send returns
 *   _speedups_untracked.c  the futures send() makes, untracked by the cycle collector:
 *                          why, and which ones to track again (track, track_decorated)
 *   _speedups_future.c     FutureMaker: asyncio's future for the stock loop, made at the
 *                          cost of the future alone
 *   _speedups_module.c     the module: interning, types registration, its functions
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
 * the coroutine and runs it only for the records the shortcut declines; a record declined
 * only because its partition has no batch with room (one in ~150 at the base settings) it
 * hands, as staged, to the Python code that opens a batch (python_new_batch).
 *
 * Mechanism, not policy: every decision is Python's (_staging.RecordStager.appender),
 * handed in as plain values when the Appender is made: the usable topics' partition
 * counts and the sticky partitions (dicts Python keeps current in place), the size bound,
 * whether keys are hashed, send()'s parameter names, the hook for on_delivery. No file
 * here reads an attribute of an asyncproducer object by name (a batch's sinks are a
 * BatchRecords field), so a rename in Python cannot silently turn the shortcut off.
 *
 * Written against the Limited API (Python 3.11): documented, stable functions only.
 *
 * Memory safety: a record's key, value and header items are borrowed between measuring
 * and writing it; no Python code can run in between: only type checks, UTF-8 conversions
 * and memory allocation (of buffers, which does not start a garbage collection). The
 * future is appended to the futures list last, when the record is written. The Appender
 * calls the clock (time.time, or any callable) before it picks the batch, so that no
 * Python code runs between its checks of the batch and the append.
 *
 * Performance: the functions of the per-record path that one file calls in another
 * (append_fields, measure_record, append_record, murmur2) were calls, not inlined, when
 * this was one file too; SPEEDUPS_INTERNAL (hidden) keeps each a direct call, not one
 * through the PLT. The small helpers (varints, type checks, takes_more) are static inline
 * here, so they are inlined in every file as before.
 */

#ifndef ASYNCPRODUCER_SPEEDUPS_H
#define ASYNCPRODUCER_SPEEDUPS_H

#ifndef Py_LIMITED_API
#define Py_LIMITED_API 0x030B0000
#endif
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>

#include <stdarg.h>
#include <stdint.h>
#include <string.h>

/* What the files share, kept out of the shared library's exported symbols (only
 * PyInit__speedups is exported): with -fPIC, a call to a default-visibility function
 * goes through the PLT, since another library could interpose it. */
#if defined(__GNUC__) || defined(__clang__)
#define SPEEDUPS_INTERNAL __attribute__((visibility("hidden")))
#else
#define SPEEDUPS_INTERNAL
#endif

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

/* Py_XSETREF, which the Limited API does not have: store ``value`` (a new reference)
 * in ``slot``, then release what it held. */
#define REPLACE(slot, value)            \
    do {                                \
        PyObject *old_ = (PyObject *)(slot); \
        (slot) = (value);               \
        Py_XDECREF(old_);               \
    } while (0)

/* ------------------------------------------------------------------ type checks */

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

/* ------------------------------------------------------------------ BatchRecords
 * (_speedups_records.c) */

/* What completing a record needs, kept apart from its encoded bytes. */
typedef struct {
    int64_t timestamp;
    int64_t key_size;   /* -1 for a null key */
    int64_t value_size; /* -1 for a null value */
} RecordInfo;

typedef struct {
    PyObject_HEAD
    PyObject *futures;            /* list: per record, its future (or None) */
    PyObject *sinks;              /* list of send_batch() sinks, or NULL/None for none */
    PyObject *buf_owner;          /* a bytearray holding buf; NULL once finished */
    char *buf;                    /* the encoded records, in buf_owner */
    Py_ssize_t buf_cap;
    RecordInfo *infos;            /* per record */
    Py_ssize_t infos_cap;
    Py_ssize_t count;
    Py_ssize_t records_size;      /* bytes used in buf */
    Py_ssize_t max_record_size;   /* the largest record's encoded bytes (a metric) */
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

/* Whether a record may be appended at all: not finished, below record_capacity. */
static inline int
takes_more(const BatchRecords *self)
{
    return !self->full && self->count < self->record_capacity;
}

SPEEDUPS_INTERNAL extern PyType_Spec records_spec;

/* Raise ``exc`` with the formatted message followed by ", not <type of obj>". */
SPEEDUPS_INTERNAL void raise_not(PyObject *exc, PyObject *obj, const char *format, ...);

/* Validate and measure a record appended as record number ``self->count``. */
SPEEDUPS_INTERNAL int measure_record(BatchRecords *self, PyObject *timestamp, PyObject *key,
                                     PyObject *value, PyObject *headers, Record *rec);

/* Append a measured record: 1 if appended, 0 if it does not fit, -1 on error. */
SPEEDUPS_INTERNAL int append_record(BatchRecords *self, PyObject *future, const Record *rec);

/* ------------------------------------------------------------------ murmur2
 * (_speedups_murmur2.c) */

/* Java's Utils.murmur2 (seed 0x9747b28c), as asyncproducer.partitioners._murmur2_u32. */
SPEEDUPS_INTERNAL uint32_t murmur2(const unsigned char *data, Py_ssize_t length);

/* murmur2(data): the module's function. */
SPEEDUPS_INTERNAL PyObject *speedups_murmur2(PyObject *module, PyObject *data);

/* ------------------------------------------------------------------ crc32c
 * (_speedups_crc32c.c) */

/* Builds the tables and picks the hardware path if the CPU has one (speedups_exec). */
SPEEDUPS_INTERNAL void crc32c_init(void);

/* crc32c(data, value=0): the module's function, as the crc32c package's. */
SPEEDUPS_INTERNAL PyObject *speedups_crc32c(PyObject *module, PyObject *const *args,
                                            Py_ssize_t nargs);
/* crc32c_tables(data, value=0): the same on the portable path, for its tests. */
SPEEDUPS_INTERNAL PyObject *speedups_crc32c_tables(PyObject *module, PyObject *const *args,
                                                   Py_ssize_t nargs);

/* ------------------------------------------------------------------ module state
 * (_speedups_module.c) */

typedef struct {
    /* This module's BatchRecords: the Appender takes its records_type only if it is a
     * subclass, since it appends to the batches as BatchRecords structs. */
    PyTypeObject *records_type;
    PyTypeObject *send_call_type;
} ModuleState;

/* Interned by speedups_exec: the names of Python's own protocols this module calls
 * (tuple.__new__, a coroutine's throw and close), never a name of asyncproducer's. */
SPEEDUPS_INTERNAL extern PyObject *str_new, *str_throw, *str_close;

/* tuple's tp_new, set by speedups_exec: tuple.__new__ without the checks its Python
 * wrapper makes (records_metadata makes them, once per call). It, not the type's tp_alloc
 * with the items set in place: it also initializes what a tuple holds besides its items.
 * Python 3.14's tuples cache their hash, "not computed" being -1; tp_alloc zeroes it, so
 * every instance would hash to 0, unlike an equal one built in Python (this abi3 binary
 * runs on every Python from 3.11). */
SPEEDUPS_INTERNAL extern newfunc tuple_new;

/* ------------------------------------------------------------------ Appender
 * (_speedups_appender.c) */

typedef struct {
    PyObject_HEAD
    /* What Python decided, handed in as plain values (see _staging.RecordStager.appender);
     * the Appender reads no attribute of a Python object. */
    PyObject *partition_counts; /* dict: usable topic -> its partition count (an int > 0) */
    PyObject *sticky;       /* dict: topic -> the keyless records' sticky partition */
    PyObject *queues;       /* dict: (topic, partition) -> deque of batches */
    PyObject *clock;        /* time.time */
    PyTypeObject *records_type;
    Py_ssize_t size_limit;  /* a batch of one record may be this large */
    Py_ssize_t bare_bound;  /* that batch's size, but for the key's and value's bytes */
    int hash_keys;          /* keyed records go to murmur2(key) % partitions */
    PyObject *add_hooks;    /* add_hooks(batch, on_delivery, None): a record's callback */
    PyObject *parameters;   /* tuple: send()'s SEND_ARGS parameter names, in order */
    PyObject *record_type;  /* ProducerRecord: send_batch() reads its fields by those names */
    /* send() in C (see SendCall), set by the producer: */
    PyTypeObject *send_call_type;
    allocfunc send_call_alloc; /* its tp_alloc, looked up once */
    PyObject *new_future;  /* the running loop's future factory */
    PyObject *python_send; /* Producer.send, bound: the coroutine for every other case */
    PyObject *python_new_batch; /* the coroutine for a record only in want of a batch */
    char open;             /* the producer is running: send() may take the shortcut */
    char untrack_futures;  /* new_future's futures are untracked (_speedups_untracked.c) */
    /* Per record, made once and kept while they serve: */
    char system_clock;     /* clock is time.time: read the system's clock in C */
    long long stamp_ms;    /* the last timestamp made from the clock, */
    PyObject *stamp;       /* as an int (NULL before the first) */
    PyObject *queue_key;   /* the last (topic, partition) looked up in queues, or NULL */
} Appender;

SPEEDUPS_INTERNAL extern PyType_Spec appender_spec;

/* What append_fields() found for a record it declined only because its partition has
 * no batch with room (none yet, or the last one full, or at its record capacity, which
 * the Python path may still extend): the record is otherwise ready, and send() hands it
 * to the Python path that opens a batch (SendCall). Both new references, or both NULL
 * for any other decline. */
typedef struct {
    PyObject *partition; /* the partition chosen (or given) */
    PyObject *stamp;     /* its timestamp, an int (given, or the clock's) */
} Unplaced;

/* append()'s work: ``fields`` are send()'s six arguments (topic, value, key, partition,
 * timestamp_ms, headers). The batch (a new reference), or None (a new reference) having
 * changed nothing, or NULL with an exception. ``unplaced``, if not NULL, is filled when
 * it declines only for want of a batch with room (see Unplaced), else left NULL. */
SPEEDUPS_INTERNAL PyObject *append_fields(Appender *self, PyObject *const *fields,
                                          PyObject *future, Unplaced *unplaced);

/* Where ``type``'s instances keep their dict pointer (its __dictoffset__): > 0, the
 * offset; 0, they have none; -1, not at a fixed place (so any instance may have
 * attributes); -2, an error is set. (_speedups_untracked.c; records.c asks too.) */
SPEEDUPS_INTERNAL Py_ssize_t dict_offset(PyTypeObject *type);

/* track(obj) and track_decorated(futures): the module's functions
 * (_speedups_untracked.c). */
SPEEDUPS_INTERNAL PyObject *speedups_track(PyObject *module, PyObject *obj);
SPEEDUPS_INTERNAL PyObject *speedups_track_decorated(PyObject *module, PyObject *futures);

/* fill_sinks(sinks, outcomes): the module's function. */
SPEEDUPS_INTERNAL PyObject *speedups_fill_sinks(PyObject *module, PyObject *const *args,
                                                Py_ssize_t nargs);

/* ------------------------------------------------------------------ send() in C
 * (_speedups_send_call.c) */

/* send()'s parameters: the record's six fields (topic, value, key, partition,
 * timestamp_ms, headers, by position), then on_delivery; their names are the Appender's
 * ``parameters``. */
#define SEND_ARGS 7

SPEEDUPS_INTERNAL extern PyType_Spec send_call_spec;

/* appender.send(...), one of the Appender's methods: a new SendCall. */
SPEEDUPS_INTERNAL PyObject *appender_send(Appender *self, PyObject *const *args,
                                          Py_ssize_t nargs, PyObject *kwnames);

/* ------------------------------------------------------------------ futures
 * (_speedups_future.c) */

SPEEDUPS_INTERNAL extern PyType_Spec future_maker_spec;

#endif /* ASYNCPRODUCER_SPEEDUPS_H */
