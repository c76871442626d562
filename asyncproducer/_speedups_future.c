/* asyncproducer._speedups, FutureMaker: the futures send() makes, at the cost of the
 * future alone. See _speedups.h.
 *
 * FutureMaker(future_type, loop)() is future_type(loop=loop): asyncio's Future on its stock
 * event loop (asyncproducer._futures.future_factory). What it saves, per record: the
 * alternatives were loop.create_future() (a Python frame around the same call) and
 * functools.partial(Future, loop=loop) (which copies its keywords into a new dict on
 * every call, then goes through type.__call__). This calls the type's tp_new and tp_init
 * as type.__call__ does, with one argument tuple and one keyword dict made once: the
 * future's __init__ reads them and keeps neither.
 */

#include "_speedups.h"

typedef struct {
    PyObject_HEAD
    PyTypeObject *type;
    newfunc type_new;
    initproc type_init;
    PyObject *args;   /* () */
    PyObject *kwargs; /* {"loop": loop}, no one else's */
} FutureMaker;

static int
future_maker_init(FutureMaker *self, PyObject *args, PyObject *kwargs)
{
    PyObject *type, *loop, *keywords, *empty;
    newfunc type_new;
    if (kwargs != NULL && PyDict_Size(kwargs) != 0) {
        PyErr_SetString(PyExc_TypeError, "FutureMaker() takes no keyword arguments");
        return -1;
    }
    if (!PyArg_ParseTuple(args, "O!O:FutureMaker", &PyType_Type, &type, &loop)) {
        return -1;
    }
    type_new = (newfunc)PyType_GetSlot((PyTypeObject *)type, Py_tp_new);
    if (type_new == NULL) {
        PyErr_Format(PyExc_TypeError, "cannot create %R instances", type);
        return -1;
    }
    keywords = Py_BuildValue("{sO}", "loop", loop);
    empty = PyTuple_New(0);
    if (keywords == NULL || empty == NULL) {
        Py_XDECREF(keywords);
        Py_XDECREF(empty);
        return -1;
    }
    /* Nothing fails from here: a maker is whole, or as it was. */
    REPLACE(self->kwargs, keywords);
    REPLACE(self->args, empty);
    REPLACE(self->type, (PyTypeObject *)Py_NewRef(type));
    self->type_new = type_new;
    self->type_init = (initproc)PyType_GetSlot(self->type, Py_tp_init);
    return 0;
}

/* future_type(loop=loop), as type.__call__ makes it. */
static PyObject *
make_future(PyObject *maker)
{
    FutureMaker *self = (FutureMaker *)maker;
    PyObject *future;
    if (self->type == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "the FutureMaker is not initialized");
        return NULL;
    }
    future = self->type_new(self->type, self->args, self->kwargs);
    if (future == NULL || self->type_init == NULL || !PyObject_TypeCheck(future, self->type)) {
        return future;
    }
    if (self->type_init(future, self->args, self->kwargs) < 0) {
        Py_DECREF(future);
        return NULL;
    }
    return future;
}

static PyObject *
future_maker_call(PyObject *self, PyObject *args, PyObject *kwargs)
{
    if (PyTuple_Size(args) != 0 || (kwargs != NULL && PyDict_Size(kwargs) != 0)) {
        PyErr_SetString(PyExc_TypeError, "a FutureMaker takes no arguments");
        return NULL;
    }
    return make_future(self);
}

static int
future_maker_traverse(FutureMaker *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE((PyObject *)self));
    Py_VISIT(self->type);
    Py_VISIT(self->kwargs);
    return 0;
}

static int
future_maker_clear(FutureMaker *self)
{
    Py_CLEAR(self->type);
    Py_CLEAR(self->args);
    Py_CLEAR(self->kwargs);
    return 0;
}

static void
future_maker_dealloc(FutureMaker *self)
{
    PyTypeObject *type = Py_TYPE((PyObject *)self);
    freefunc free_self = (freefunc)PyType_GetSlot(type, Py_tp_free);
    PyObject_GC_UnTrack(self);
    future_maker_clear(self);
    free_self(self);
    Py_DECREF(type);
}

static PyType_Slot future_maker_slots[] = {
    {Py_tp_doc, "FutureMaker(future_type, loop): called, future_type(loop=loop), made as\n"
                "type.__call__ makes it, with no per-call argument dict."},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_init, future_maker_init},
    {Py_tp_call, future_maker_call},
    {Py_tp_dealloc, future_maker_dealloc},
    {Py_tp_traverse, future_maker_traverse},
    {Py_tp_clear, future_maker_clear},
    {0, NULL},
};

PyType_Spec future_maker_spec = {
    "asyncproducer._speedups.FutureMaker",
    sizeof(FutureMaker),
    0,
    Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    future_maker_slots,
};
