/* Futures the cycle collector does not walk (see _speedups.h): send() in C makes each
 * record's asyncio future untracked (SendCall, when the Appender's untrack_futures is
 * set), and the two functions here track again the ones that may come to be part of a
 * reference cycle.
 *
 * Why. A producer keeps thousands of futures in flight, and an application often holds
 * as many after they completed (a window of futures, a gather): each one was walked by
 * every young collection it lived through and by every full collection. Measured
 * (docs/internals.md, "Futures the collector does not walk"): a few per cent of the
 * loop's time, and most of each full collection's pause at full speed.
 *
 * Why it is safe. A collector that does not walk an object cannot free a cycle through
 * it; so a future must be tracked before it can be part of a cycle that becomes garbage.
 * While pending, a future is held by its batch: whatever cycle runs through it (a task
 * awaiting it, through its callbacks) is reachable, not garbage. Completed with its
 * metadata, an asyncio future holds its loop and its result (a tuple of str and ints,
 * itself untracked) and nothing else (the callbacks are let go once scheduled): no path
 * back to it. It can hold more only as
 *
 *   - failed: its exception's traceback holds frames, whose locals may hold it;
 *   - cancelled by its owner: its cancel message, or the CancelledError it may keep, may
 *     lead back to it;
 *   - with attributes (an asyncio future has an instance dict): they may lead back to it.
 *
 * So the producer calls track() on a future it fails or finds cancelled, and
 * track_decorated() on the futures of a batch it completed, before letting them go. An
 * attribute set on a future after it completed, and leading back to it, is the one case
 * left: a cycle the collector cannot free (docs/internals.md says so).
 */

#include "_speedups.h"

static int
is_gc(PyObject *obj)
{
    return (PyType_GetFlags(Py_TYPE(obj)) & Py_TPFLAGS_HAVE_GC) != 0;
}

PyObject *
speedups_track(PyObject *module, PyObject *obj)
{
    (void)module;
    if (is_gc(obj) && !PyObject_GC_IsTracked(obj)) {
        PyObject_GC_Track(obj);
    }
    Py_RETURN_NONE;
}

/* Declared (and described) in _speedups.h. */
Py_ssize_t
dict_offset(PyTypeObject *type)
{
    Py_ssize_t offset;
    PyObject *value = PyObject_GetAttrString((PyObject *)type, "__dictoffset__");
    if (value == NULL) {
        return -2;
    }
    offset = PyLong_AsSsize_t(value);
    Py_DECREF(value);
    if (offset == -1 && PyErr_Occurred()) {
        return -2;
    }
    return offset < 0 ? -1 : offset;
}

PyObject *
speedups_track_decorated(PyObject *module, PyObject *futures)
{
    PyTypeObject *type = NULL; /* the type whose offset ``offset`` is */
    Py_ssize_t offset = 0, i;
    (void)module;
    if (!PyList_Check(futures)) {
        PyErr_SetString(PyExc_TypeError, "track_decorated() takes a list");
        return NULL;
    }
    /* The list's size read each time, and each item held: looking up a type's
     * __dictoffset__ could run a metaclass's Python code. */
    for (i = 0; i < PyList_Size(futures); i++) {
        PyObject *future = PyList_GetItem(futures, i), *dict;
        int failed = 0;
        if (future == NULL) {
            return NULL;
        }
        if (future == Py_None || !is_gc(future) || PyObject_GC_IsTracked(future)) {
            continue;
        }
        Py_INCREF(future);
        if (Py_TYPE(future) != type) {
            type = Py_TYPE(future);
            offset = dict_offset(type);
            failed = offset == -2;
        }
        if (!failed && offset != 0) { /* offset 0: no attributes possible */
            dict = offset > 0 ? *(PyObject **)((char *)future + offset) : NULL;
            if (offset < 0 || (dict != NULL && PyDict_Size(dict) > 0)) {
                PyObject_GC_Track(future);
            }
        }
        Py_DECREF(future);
        if (failed) {
            return NULL;
        }
    }
    Py_RETURN_NONE;
}
