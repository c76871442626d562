/* asyncproducer._speedups, Appender: send()'s whole synchronous step in C for a record
 * that needs no Python code (find the partition, append to its open batch if that has
 * room; anything else, decline having changed nothing), send_batch()'s loop over such
 * records (append_each), and the sinks that loop leaves (end_run makes them, fill_sinks
 * fills them when the batch completes). Its send() is in _speedups_send_call.c. See
 * _speedups.h.
 */

#include "_speedups.h"

#include <time.h>

/* Appender(*, partition_counts, sticky, queues, clock, records_type, size_limit,
 *          bare_bound, hash_keys, add_hooks, parameters, record_type): each described in
 * _speedups.h; _staging.RecordStager.appender is the one caller. */
static int
appender_init(Appender *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"partition_counts", "sticky", "queues", "clock",
                               "records_type", "size_limit", "bare_bound", "hash_keys",
                               "add_hooks", "parameters", "record_type", NULL};
    PyObject *partition_counts, *sticky, *queues, *clock, *records_type, *add_hooks;
    PyObject *parameters, *record_type;
    Py_ssize_t size_limit, bare_bound, i;
    int hash_keys;
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "$O!O!O!OO!nnpOO!O!", keywords, &PyDict_Type, &partition_counts,
            &PyDict_Type, &sticky, &PyDict_Type, &queues, &clock, &PyType_Type,
            &records_type, &size_limit, &bare_bound, &hash_keys, &add_hooks, &PyTuple_Type,
            &parameters, &PyType_Type, &record_type)) {
        return -1;
    }
    if (PyTuple_Size(parameters) != SEND_ARGS) {
        PyErr_Format(PyExc_ValueError, "parameters must name send()'s %d parameters, not %R",
                     SEND_ARGS, parameters);
        return -1;
    }
    for (i = 0; i < SEND_ARGS; i++) {
        if (!PyUnicode_CheckExact(PyTuple_GetItem(parameters, i))) {
            PyErr_Format(PyExc_TypeError, "parameters must be str, not %R", parameters);
            return -1;
        }
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
    REPLACE(self->partition_counts, Py_NewRef(partition_counts));
    REPLACE(self->sticky, Py_NewRef(sticky));
    REPLACE(self->queues, Py_NewRef(queues));
    REPLACE(self->clock, Py_NewRef(clock));
    {
        PyObject *time_module = PyImport_ImportModule("time"), *time_time = NULL;
        if (time_module != NULL) {
            time_time = PyObject_GetAttrString(time_module, "time");
            Py_DECREF(time_module);
        }
        if (time_time == NULL) {
            return -1;
        }
        self->system_clock = clock == time_time;
        Py_DECREF(time_time);
    }
    Py_CLEAR(self->stamp);
    Py_CLEAR(self->queue_key);
    REPLACE(self->records_type, (PyTypeObject *)Py_NewRef(records_type));
    REPLACE(self->add_hooks, Py_NewRef(add_hooks));
    REPLACE(self->parameters, Py_NewRef(parameters));
    REPLACE(self->record_type, Py_NewRef(record_type));
    self->size_limit = size_limit;
    self->bare_bound = bare_bound;
    self->hash_keys = hash_keys;
    return 0;
}

static int
appender_traverse(Appender *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE((PyObject *)self));
    Py_VISIT(self->partition_counts);
    Py_VISIT(self->sticky);
    Py_VISIT(self->queues);
    Py_VISIT(self->clock);
    Py_VISIT(self->records_type);
    Py_VISIT(self->add_hooks);
    Py_VISIT(self->parameters);
    Py_VISIT(self->record_type);
    Py_VISIT(self->send_call_type);
    Py_VISIT(self->new_future);
    Py_VISIT(self->python_send);
    Py_VISIT(self->python_new_batch);
    Py_VISIT(self->stamp);
    Py_VISIT(self->queue_key);
    return 0;
}

static int
appender_clear(Appender *self)
{
    Py_CLEAR(self->partition_counts);
    Py_CLEAR(self->sticky);
    Py_CLEAR(self->queues);
    Py_CLEAR(self->clock);
    Py_CLEAR(self->records_type);
    Py_CLEAR(self->add_hooks);
    Py_CLEAR(self->parameters);
    Py_CLEAR(self->record_type);
    Py_CLEAR(self->send_call_type);
    Py_CLEAR(self->new_future);
    Py_CLEAR(self->python_send);
    Py_CLEAR(self->python_new_batch);
    Py_CLEAR(self->stamp);
    Py_CLEAR(self->queue_key);
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

/* The topic's partition count from ``partition_counts``, 0 when it has none usable now
 * (unknown, no partitions, an error: the Python path waits for its metadata), -1 on
 * error. */
static Py_ssize_t
partition_count(Appender *self, PyObject *topic)
{
    PyObject *count;
    Py_ssize_t value;
    if (self->partition_counts == NULL) {
        return 0; /* not initialized */
    }
    count = PyDict_GetItemWithError(self->partition_counts, topic); /* borrowed */
    if (count == NULL) {
        return PyErr_Occurred() ? -1 : 0;
    }
    if (!Py_IS_TYPE(count, &PyLong_Type)) {
        return 0;
    }
    value = PyLong_AsSsize_t(count);
    if (value == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return 0;
    }
    return value > 0 ? value : 0;
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

/* A record's timestamp when send() gave none: int(clock() * 1000), as the Python path
 * makes it; a new reference, or NULL. Every record of one millisecond gets the same int.
 * With time.time as the clock (the producer's), the system clock is read here as
 * time.time() reads it, without a float made per record. */
static PyObject *
clock_stamp(Appender *self)
{
    double seconds, millis;
    long long ms;
#if defined(CLOCK_REALTIME)
    struct timespec now;
    if (self->system_clock && clock_gettime(CLOCK_REALTIME, &now) == 0) {
        /* time.time(): the nanoseconds as a double, divided by 1e9 */
        seconds = (double)((long long)now.tv_sec * 1000000000LL + now.tv_nsec) / 1e9;
    }
    else
#endif
    {
        PyObject *reading = PyObject_CallNoArgs(self->clock);
        if (reading == NULL) {
            return NULL;
        }
        seconds = PyFloat_AsDouble(reading);
        Py_DECREF(reading);
        if (seconds == -1.0 && PyErr_Occurred()) {
            return NULL;
        }
    }
    millis = seconds * 1000.0;
    if (!(millis > -9.2e18 && millis < 9.2e18)) {
        return PyLong_FromDouble(millis); /* nan or inf: its error; else a huge int */
    }
    ms = (long long)millis; /* toward zero, as int() */
    if (self->stamp == NULL || ms != self->stamp_ms) {
        PyObject *stamp = PyLong_FromLongLong(ms);
        if (stamp == NULL) {
            return NULL;
        }
        REPLACE(self->stamp, stamp);
        self->stamp_ms = ms;
    }
    return Py_NewRef(self->stamp);
}

/* The key of the (topic, partition) queue in ``queues``, a new reference: the last one
 * made when it is for the same objects (as it is for every record while the sticky
 * partition stays). */
static PyObject *
queue_key_of(Appender *self, PyObject *topic, PyObject *partition)
{
    PyObject *key = self->queue_key;
    if (key != NULL && PyTuple_GetItem(key, 0) == topic && PyTuple_GetItem(key, 1) == partition) {
        return Py_NewRef(key);
    }
    key = PyTuple_Pack(2, topic, partition);
    if (key != NULL) {
        REPLACE(self->queue_key, Py_NewRef(key));
    }
    return key;
}

/* appender.append(topic, value, key, partition, timestamp_ms, headers, future): the
 * batch the record went into, or None, having changed nothing, when the record needs
 * send()'s Python path. */

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
    return append_fields(self, args, args[6], NULL);
}

/* append()'s work: ``fields`` are send()'s six arguments (topic, value, key, partition,
 * timestamp_ms, headers). The batch (a new reference), or None (a new reference) having
 * changed nothing, or NULL with an exception. */
PyObject *
append_fields(Appender *self, PyObject *const *fields, PyObject *future, Unplaced *unplaced)
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
        stamp = clock_stamp(self);
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
    {
        /* Nor any int but from 0 to 2**63 - 1: checked before a batch is looked at, as a
         * record left unplaced goes on without being staged again. */
        int overflow;
        if (PyLong_AsLongLongAndOverflow(stamp, &overflow) < 0 || overflow != 0) {
            goto decline; /* (an exact int: no error but the overflow) */
        }
    }

    /* The partition's open batch: the last of its queue. */
    queue_key = queue_key_of(self, topic, partition_obj);
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
        goto unplaced; /* no batch yet */
    }
    queued = PyObject_Size(queue);
    if (queued > 0) {
        batch = PySequence_GetItem(queue, queued - 1);
    }
    Py_DECREF(queue);
    if (queued < 0 || (queued > 0 && batch == NULL)) {
        goto error;
    }
    if (batch == NULL) {
        goto unplaced; /* an empty queue */
    }
    if (!PyObject_TypeCheck(batch, self->records_type)) {
        goto decline;
    }
    if (!takes_more((BatchRecords *)batch)) {
        goto unplaced; /* its last batch takes no more */
    }
    if (measure_record((BatchRecords *)batch, stamp, key, value, Py_None, &rec) < 0) {
        PyErr_Clear(); /* a timestamp out of int64: the Python path says so */
        goto decline;
    }
    appended = append_record((BatchRecords *)batch, future, &rec);
    if (appended < 0) {
        goto error;
    }
    if (appended == 0) {
        goto unplaced; /* full: the Python path closes it and opens a new batch */
    }
    Py_DECREF(stamp);
    Py_DECREF(partition_obj);
    return batch;

unplaced:
    if (unplaced != NULL) {
        unplaced->partition = partition_obj; /* handed over */
        unplaced->stamp = stamp;
        Py_XDECREF(batch);
        Py_RETURN_NONE;
    }

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

/* What ProducerBatch.add_sink(first, results, slot, stop - slot) does, without its frame
 * (with keys, nearly every record is a run of its own): the run of records ``slot`` to
 * ``stop - 1`` of ``results`` went into ``batch`` from its record ``first`` on, so
 * ``(first, results, slot, count)`` goes at the end of the batch's sinks (a list, made
 * if it has none). */
static int
end_run(BatchRecords *batch, Py_ssize_t first, PyObject *results, Py_ssize_t slot,
        Py_ssize_t stop)
{
    PyObject *sink;
    int appended;
    if (batch->sinks == NULL || !PyList_CheckExact(batch->sinks)) {
        PyObject *sinks = PyList_New(0);
        if (sinks == NULL) {
            return -1;
        }
        REPLACE(batch->sinks, sinks);
    }
    sink = Py_BuildValue("(nOnn)", first, results, slot, stop - slot);
    appended = sink == NULL ? -1 : PyList_Append(batch->sinks, sink);
    Py_XDECREF(sink);
    return appended;
}

/* send_batch()'s loop, for as long as the records need no Python code: each record from
 * ``iterator`` (a tuple of send()'s first 2 to 6 arguments, or an instance of exactly the
 * Appender's ``record_type``, ProducerRecord, whose fields are send()'s parameters) is
 * appended as append() does, with no future; it gets a slot (None) at the end of
 * ``results``, its batch is a key of ``batches``, and each run of records in one batch
 * reports to its slots (ProducerBatch.add_sink) before this returns. Returns None when the
 * iterator is exhausted, or (record,) for the first record it did not take, with no slot:
 * send_batch()'s Python path takes that one (and fails alone a record_type instance whose
 * fields cannot be read). On an error (what the iterator raised), ``results`` holds
 * exactly the slots of the records appended. */
static PyObject *
appender_append_each(Appender *self, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *iterator, *results, *batches, *outcome = NULL;
    PyObject *run = NULL; /* the current run's batch (owned) */
    Py_ssize_t run_first = 0, run_slot = 0, slot;
    Py_ssize_t taken = 0; /* the slots of records appended, to here */

    if (nargs != 3) {
        PyErr_Format(PyExc_TypeError,
                     "append_each() takes 3 arguments (records, results, batches), %zd given",
                     nargs);
        return NULL;
    }
    iterator = args[0];
    results = args[1];
    batches = args[2];
    if (!PyIter_Check(iterator) || !PyList_CheckExact(results) || !PyDict_CheckExact(batches)) {
        PyErr_SetString(PyExc_TypeError, "append_each() takes an iterator, a list and a dict");
        return NULL;
    }
    if (self->parameters == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the Appender is not initialized");
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
        else if ((PyObject *)Py_TYPE(record) == self->record_type) {
            for (i = 0; i < 6; i++) {
                owned[i] = PyObject_GetAttr(record, PyTuple_GetItem(self->parameters, i));
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
            batch = append_fields(self, fields, Py_None, NULL);
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
        if (run != NULL && end_run((BatchRecords *)run, run_first, results, run_slot, slot) < 0) {
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
        if (end_run((BatchRecords *)run, run_first, results, run_slot, taken) < 0) {
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
        if (end_run((BatchRecords *)run, run_first, results, run_slot, taken) < 0) {
            PyErr_Clear();
        }
        PyErr_Restore(type, value, traceback);
        Py_DECREF(run);
    }
    return NULL;
}

/* fill_sinks(sinks, outcomes): for each (first, results, slot, count) of ``sinks`` (see
 * ProducerBatch.add_sink), results[slot:slot + count] = outcomes[first:first + count];
 * returns how many outcomes that reported. With keys nearly every send_batch() record is
 * a sink of its own, and a slice assignment each cost more than the rest of its
 * completion. */
PyObject *
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

static PyMethodDef appender_methods[] = {
    {"append", (PyCFunction)(void (*)(void))appender_append, METH_FASTCALL,
     "append(topic, value, key, partition, timestamp_ms, headers, future, /)\n--\n\n"
     "The batch the record went into, or None, having changed nothing, when the record\n"
     "needs send()'s Python path."},
    {"append_each", (PyCFunction)(void (*)(void))appender_append_each, METH_FASTCALL,
     "append_each(records, results, batches, /)\n--\n\n"
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
    {"python_new_batch", T_OBJECT, offsetof(Appender, python_new_batch), 0,
     "send(): the coroutine function for a record declined only because its partition\n"
     "has no batch with room: (topic, partition, chosen, key, value, record, on_delivery,\n"
     "future), record being (timestamp, key, value, ())."},
    {"untrack_futures", T_BOOL, offsetof(Appender, untrack_futures), 0,
     "send(): new_future's futures are made untracked by the cycle collector (see\n"
     "_speedups_untracked.c)."},
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

PyType_Spec appender_spec = {
    "asyncproducer._speedups.Appender",
    sizeof(Appender),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    appender_slots,
};
