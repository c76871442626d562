/* asyncproducer._speedups, SendCall: send() in C. Appender.send is Producer.send while
 * the producer has an Appender; it returns a SendCall, an awaitable that behaves as the
 * coroutine would: awaited, it takes the Appender's shortcut once, or else drives
 * Producer.send's coroutine to its end (send(), throw(), close()). See _speedups.h.
 */

#include "_speedups.h"

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

typedef struct {
    PyObject_HEAD
    Appender *appender;
    PyObject *args[SEND_ARGS];
    PyObject *inner; /* python_send's coroutine, while the SendCall drives it */
    int state;
} SendCall;

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

/* python_new_batch's coroutine for the record append_fields() left ``unplaced``, with
 * ``future`` (both handed over: released here). */
static PyObject *
new_batch_call(Appender *appender, PyObject *const *fields, Unplaced *unplaced,
               PyObject *future)
{
    PyObject *topic = fields[0], *value = fields[1], *key = fields[2];
    PyObject *chosen = fields[3] == Py_None ? Py_True : Py_False, *inner = NULL;
    PyObject *headers = PyTuple_New(0), *record = NULL;
    if (headers != NULL) {
        record = PyTuple_Pack(4, unplaced->stamp, key, value, headers);
        Py_DECREF(headers);
    }
    if (record != NULL) {
        inner = PyObject_CallFunctionObjArgs(appender->python_new_batch, topic,
                                             unplaced->partition, chosen, key, value, record,
                                             fields[SEND_ARGS - 1], future, NULL);
        Py_DECREF(record);
    }
    Py_DECREF(unplaced->partition);
    Py_DECREF(unplaced->stamp);
    Py_DECREF(future);
    return inner;
}

/* The first step: append()'s shortcut, or else the start of a coroutine: python_new_batch's
 * when the record only needs a new batch, python_send's for anything else. */
static PySendResult
send_call_start(SendCall *self, PyObject **result)
{
    Appender *appender = self->appender;
    PyObject *on_delivery = self->args[SEND_ARGS - 1];
    PyObject *args;
    if (appender->open && appender->new_future != NULL) {
        PyObject *future = PyObject_CallNoArgs(appender->new_future), *batch;
        Unplaced unplaced = {NULL, NULL};
        int hands_over = appender->python_new_batch != NULL && appender->python_new_batch != Py_None;
        if (future == NULL) {
            return PYGEN_ERROR;
        }
        if (appender->untrack_futures) {
            PyObject_GC_UnTrack(future); /* tracked again where needed: _speedups_untracked.c */
        }
        batch = append_fields(appender, self->args, future, hands_over ? &unplaced : NULL);
        if (batch != NULL && batch != Py_None) {
            if (on_delivery != Py_None) {
                PyObject *done = PyObject_CallFunctionObjArgs(appender->add_hooks, batch,
                                                              on_delivery, Py_None, NULL);
                Py_XDECREF(done);
                if (done == NULL) {
                    Py_CLEAR(future);
                }
            }
            Py_DECREF(batch);
            *result = future;
            return future == NULL ? PYGEN_ERROR : PYGEN_RETURN;
        }
        if (batch == NULL) {
            Py_DECREF(future);
            return PYGEN_ERROR;
        }
        Py_DECREF(batch);
        if (unplaced.partition != NULL) {
            self->inner = new_batch_call(appender, self->args, &unplaced, future);
            if (self->inner == NULL) {
                return PYGEN_ERROR;
            }
            return send_call_delegate(self, Py_None, result);
        }
        Py_DECREF(future); /* python_send makes its own */
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

PyType_Spec send_call_spec = {
    "asyncproducer._speedups.SendCall",
    sizeof(SendCall),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    send_call_slots,
};

/* appender.send(...): a new SendCall holding the arguments (None for those not given). */
PyObject *
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
    if (self->parameters == NULL || self->send_call_alloc == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the Appender is not initialized");
        return NULL;
    }
    for (i = 0; i < nkw; i++) {
        PyObject *name = PyTuple_GetItem(kwnames, i); /* borrowed; in range */
        for (j = 0; j < SEND_ARGS && name != PyTuple_GetItem(self->parameters, j); j++) {
        }
        if (j == SEND_ARGS) { /* not the same object: compare the text */
            for (j = 0; j < SEND_ARGS; j++) {
                int order = PyUnicode_Compare(name, PyTuple_GetItem(self->parameters, j));
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
        PyErr_Format(PyExc_TypeError, "send() missing required argument %R",
                     PyTuple_GetItem(self->parameters, 0));
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
