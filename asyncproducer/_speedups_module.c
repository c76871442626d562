/* asyncproducer._speedups, the module: its interned strings and tuple's tp_new (the
 * state the other files share, defined here), the registration of its types
 * (BatchRecords, SendCall, Appender, FutureMaker) and its functions (murmur2, fill_sinks, crc32c,
 * track, track_decorated), and its initialization. See _speedups.h.
 */

#include "_speedups.h"

/* Declared (and described) in _speedups.h; set by speedups_exec. */
PyObject *str_new, *str_throw, *str_close;
newfunc tuple_new;

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
    PyObject *appender, *future_maker;
    if (state == NULL) {
        return -1;
    }
    if (intern(&str_new, "__new__") < 0 || intern(&str_throw, "throw") < 0 ||
        intern(&str_close, "close") < 0) {
        return -1;
    }
    crc32c_init(); /* the same tables every time: a second module instance may redo it */
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
    future_maker = add_type(module, &future_maker_spec);
    if (future_maker == NULL) {
        return -1;
    }
    Py_DECREF(future_maker);
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
    {"crc32c", (PyCFunction)(void (*)(void))speedups_crc32c, METH_FASTCALL,
     "crc32c(data, value=0, /)\n--\n\n"
     "CRC-32C (Castagnoli) of a buffer, carried on from value, as the crc32c package's\n"
     "function of that name (a record batch's checksum)."},
    {"crc32c_tables", (PyCFunction)(void (*)(void))speedups_crc32c_tables, METH_FASTCALL,
     "crc32c_tables(data, value=0, /)\n--\n\n"
     "crc32c() computed with the tables whatever the CPU has (the portable path, for its\n"
     "tests)."},
    {"track", (PyCFunction)speedups_track, METH_O,
     "track(obj, /)\n--\n\n"
     "Have the cycle collector walk obj again (a future send() made untracked)."},
    {"track_decorated", (PyCFunction)speedups_track_decorated, METH_O,
     "track_decorated(futures, /)\n--\n\n"
     "track() each untracked item of the list futures that has attributes (None skipped)."},
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
