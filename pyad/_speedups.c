/*
 * The one hot path of recording a scalar program, in C: `x op y` on two active
 * scalars of one tape, or on an active scalar and a Python float or int.
 *
 * Why this is C and not Python: a Python-level operator method costs a frame,
 * attribute look-ups and three list appends, about 300 ns a call on a small
 * machine; the same work here costs a few tens of ns. It does exactly what the
 * Python fallback (pyad.scalar.binary) does on these cases: append one row
 * (op code, operand a, operand b or the constant) to the store's buffer and
 * return a new Scalar for the next slot. Every other case (arrays, numpy
 * scalars, two tapes, a closed tape, a call from a thread that does not own
 * the buffer) goes to that fallback, which raises the errors. Nothing here
 * touches the C tape: the buffer reaches it through cffi like every other row.
 *
 * Types:
 *   RowStore   - the base of both backends' stores: the buffer of rows (C arrays),
 *                the next slot number (_next) and the owner thread (_owner).
 *   ScalarBase - the base of pyad.Scalar: a store (_s) and a slot (_i).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <structmember.h>
#include <pythread.h>
#include <stdint.h>

/* A row waiting in the buffer: b is a slot number (exact in a double) or, for
 * *_c ops, the constant itself; the store splits the two when it hands over. */
typedef struct {
    PyObject_HEAD
    unsigned char *op;
    int32_t *a;
    double *b;
    Py_ssize_t n, cap;   /* rows buffered, rows there is room for */
    Py_ssize_t next;     /* the slot the next recorded op takes */
    unsigned long owner; /* the thread that records scalar ops on this store */
    int closed;
    int busy;                 /* depth of _enter() calls of busy_thread (0: none) */
    unsigned long busy_thread; /* the thread inside a direct record call or a hand-over */
} RowStoreObject;

typedef struct {
    PyObject_HEAD
    PyObject *store;
    Py_ssize_t slot;
} ScalarObject;

/* The Python operators whose slots this file fills. Which registry row each one
 * records, its constant forms and its result type come from Python at configure()
 * time (pyad/scalar.py reads them from csrc/ops.def): no primitive is named here.
 * An operator the registry gives no row answers NotImplemented. */
enum { OP_ADD, OP_SUB, OP_MUL, OP_TRUEDIV, OP_LT, OP_LE, OP_GT, OP_GE, OP_EQ, OP_NE,
       N_OPERATORS };
static const char *const OPERATOR_NAMES[N_OPERATORS] = {
    "__add__", "__sub__", "__mul__", "__truediv__",
    "__lt__", "__le__", "__gt__", "__ge__", "__eq__", "__ne__"};

/* Per operator: the op code of x op y, of x op c and of c op x with a constant c
 * (-1 where the constant has no form of its own and the fallback records it),
 * whether the result is a Bool, and the row's name (NULL: no row). */
typedef struct {
    long op, with_const, const_with;
    int boolean;
    PyObject *name;
} OperatorRow;

static OperatorRow rows[N_OPERATORS];
static PyTypeObject *scalar_type = NULL;  /* pyad.Scalar, set by configure() */
static PyTypeObject *bool_type = NULL;    /* pyad.Bool */
static PyObject *fallback = NULL;         /* pyad.scalar.binary(x, y, name) */
static PyObject *closed_error = NULL;     /* pyad.TapeClosedError */
static PyObject *closed_message = NULL;   /* its message: the C core's, for PYAD_ECLOSED */
static unsigned char b_is_slot[256];      /* per op code: whether b names a slot */

static PyTypeObject RowStoreType;
static PyTypeObject ScalarBaseType;

#define IS_ACTIVE(o) PyObject_TypeCheck((o), &ScalarBaseType)
#define MAX_SLOT ((Py_ssize_t)INT32_MAX)

/* ---- RowStore ---- */

static void free_columns(unsigned char *op, int32_t *a, double *b)
{
    PyMem_Free(op);
    PyMem_Free(a);
    PyMem_Free(b);
}

static void rowstore_free_rows(RowStoreObject *self)
{
    free_columns(self->op, self->a, self->b);
    self->op = NULL;
    self->a = NULL;
    self->b = NULL;
    self->n = self->cap = 0;
}

static void rowstore_dealloc(RowStoreObject *self)
{
    rowstore_free_rows(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Room for one more row; all three columns grow or none does. */
static int rowstore_reserve(RowStoreObject *s)
{
    if (s->n < s->cap)
        return 0;
    Py_ssize_t cap = s->cap ? 2 * s->cap : 1024;
    unsigned char *op = PyMem_Malloc((size_t)cap);
    int32_t *a = PyMem_Malloc((size_t)cap * sizeof *a);
    double *b = PyMem_Malloc((size_t)cap * sizeof *b);
    if (op == NULL || a == NULL || b == NULL) {
        free_columns(op, a, b);
        /* PyErr_NoMemory() would raise a MemoryError without a message. */
        PyErr_Format(PyExc_MemoryError, "out of memory buffering %zd recorded operations",
                     cap);
        return -1;
    }
    if (s->n) {
        memcpy(op, s->op, (size_t)s->n);
        memcpy(a, s->a, (size_t)s->n * sizeof *a);
        memcpy(b, s->b, (size_t)s->n * sizeof *b);
    }
    free_columns(s->op, s->a, s->b);
    s->op = op;
    s->a = a;
    s->b = b;
    s->cap = cap;
    return 0;
}

static int closed_tape(void)
{
    PyObject *type = closed_error ? closed_error : PyExc_RuntimeError;
    if (closed_message)
        PyErr_SetObject(type, closed_message);
    else
        PyErr_SetNone(type);
    return -1;
}

/* Buffer one row and number its slot: -1 with an exception set, or 0. */
static int rowstore_append(RowStoreObject *s, long op, Py_ssize_t a, double b)
{
    if (s->closed)
        return closed_tape();
    if (s->next >= MAX_SLOT) {
        PyErr_SetString(PyExc_OverflowError, "a tape holds at most 2**31 - 1 slots");
        return -1;
    }
    if (rowstore_reserve(s) < 0)
        return -1;
    s->op[s->n] = (unsigned char)op;
    s->a[s->n] = (int32_t)a;
    s->b[s->n] = b;
    s->n++;
    s->next++;
    return 0;
}

/* Raise pyad.TapeBusyError (looked up when needed: this path is rare). */
static void busy_error(const char *what)
{
    PyObject *errors = PyImport_ImportModule("pyad.errors");
    PyObject *cls = errors ? PyObject_GetAttrString(errors, "TapeBusyError") : NULL;
    Py_XDECREF(errors);
    if (cls == NULL)
        return;
    PyErr_Format(cls, "another thread is %s on this tape right now: record each tape in "
                      "one thread at a time", what);
    Py_DECREF(cls);
}

static int busy_elsewhere(const RowStoreObject *s, unsigned long me)
{
    return s->busy && s->busy_thread != me;
}

/* Who may buffer a row: the owner; another thread only while no one else has
 * rows buffered or is inside a record call (it then becomes the owner). Checked
 * here, under the GIL, so no other thread can slip in between check and append. */
static int may_record(RowStoreObject *s)
{
    unsigned long me = PyThread_get_thread_ident();
    if (busy_elsewhere(s, me)) {
        busy_error("recording");
        return -1;
    }
    if (s->owner != me) {
        if (s->n) {
            busy_error("recording (its operations are still buffered)");
            return -1;
        }
        s->owner = me;
    }
    return 0;
}

static PyObject *rowstore_push(RowStoreObject *self, PyObject *args)
{
    int op;
    Py_ssize_t a;
    double b;
    if (!PyArg_ParseTuple(args, "ind:_push", &op, &a, &b))
        return NULL;
    if (op < 0 || op > 255 || a < 0 || a >= self->next) {
        PyErr_Format(PyExc_ValueError, "cannot buffer op %d on slot %zd: no such op or slot",
                     op, a);
        return NULL;
    }
    if (b_is_slot[op] && !(b >= 0 && b < (double)self->next && b == (double)(int32_t)b)) {
        PyErr_Format(PyExc_ValueError, "cannot buffer op %d with operand %R: no such slot",
                     op, PyTuple_GET_ITEM(args, 2));
        return NULL;
    }
    if (may_record(self) < 0)
        return NULL;
    Py_ssize_t slot = self->next;
    if (rowstore_append(self, op, a, b) < 0)
        return NULL;
    return PyLong_FromSsize_t(slot);
}

static PyObject *rowstore_take(RowStoreObject *self, PyObject *unused)
{
    (void)unused;
    if (self->closed) {
        closed_tape();
        return NULL;
    }
    Py_ssize_t n = self->n;
    /* An empty buffer may have no arrays yet: bytes of length 0 then. */
    PyObject *op = PyBytes_FromStringAndSize(n ? (const char *)self->op : "", n);
    PyObject *a = PyBytes_FromStringAndSize(n ? (const char *)self->a : "",
                                            n * (Py_ssize_t)sizeof(int32_t));
    PyObject *b = PyBytes_FromStringAndSize(n ? (const char *)self->b : "",
                                            n * (Py_ssize_t)sizeof(double));
    PyObject *rows = (op && a && b) ? PyTuple_Pack(3, op, a, b) : NULL;
    Py_XDECREF(op);
    Py_XDECREF(a);
    Py_XDECREF(b);
    if (rows == NULL)
        return NULL;
    self->n = 0;
    /* A long recording's buffer goes back, not a few KiB kept for the next rows. */
    if (self->cap > 65536)
        rowstore_free_rows(self);
    return rows;
}

static PyObject *rowstore_close_rows(RowStoreObject *self, PyObject *unused)
{
    (void)unused;
    rowstore_free_rows(self);
    self->closed = 1;
    Py_RETURN_NONE;
}

/* _enter(claim) -> 0, or 1 if claim and another thread has rows buffered, or 2 if
 * another thread is inside _enter. On 0 the caller is inside (nested calls of
 * one thread count) until _leave(); with claim it also becomes the owner. Atomic
 * under the GIL: check and mark happen in one C call. */
static PyObject *rowstore_enter(RowStoreObject *self, PyObject *arg)
{
    int claim = PyObject_IsTrue(arg);
    if (claim < 0)
        return NULL;
    unsigned long me = PyThread_get_thread_ident();
    if (busy_elsewhere(self, me))
        return PyLong_FromLong(2);
    if (claim && self->owner != me) {
        if (self->n)
            return PyLong_FromLong(1);
        self->owner = me;
    }
    self->busy++;
    self->busy_thread = me;
    return PyLong_FromLong(0);
}

static PyObject *rowstore_leave(RowStoreObject *self, PyObject *unused)
{
    (void)unused;
    if (self->busy > 0)
        self->busy--;
    Py_RETURN_NONE;
}

static PyObject *rowstore_get_owner(RowStoreObject *self, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLong(self->owner);
}

/* pyad.scalar.claim sets the owner: refused while another thread is inside a
 * record call, whose slots the new owner's rows would otherwise reuse. */
static int rowstore_set_owner(RowStoreObject *self, PyObject *value, void *closure)
{
    (void)closure;
    if (value == NULL) {
        PyErr_SetString(PyExc_AttributeError, "_owner cannot be deleted");
        return -1;
    }
    unsigned long owner = PyLong_AsUnsignedLong(value);
    if (owner == (unsigned long)-1 && PyErr_Occurred())
        return -1;
    if (busy_elsewhere(self, PyThread_get_thread_ident())) {
        busy_error("recording");
        return -1;
    }
    self->owner = owner;
    return 0;
}

static PyGetSetDef rowstore_getset[] = {
    {"_owner", (getter)rowstore_get_owner, (setter)rowstore_set_owner,
     "the recording thread", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMethodDef rowstore_methods[] = {
    {"_enter", (PyCFunction)rowstore_enter, METH_O,
     "_enter(claim) -> 0 | 1 (another thread's rows are buffered) | 2 (another thread "
     "is recording): mark this thread as recording until _leave()"},
    {"_leave", (PyCFunction)rowstore_leave, METH_NOARGS, "end an _enter()"},
    {"_push", (PyCFunction)rowstore_push, METH_VARARGS,
     "_push(op, a, b) -> slot: buffer one row (b: a slot, or the constant of a *_c op)"},
    {"_take", (PyCFunction)rowstore_take, METH_NOARGS,
     "_take() -> (op, a, b): the buffered rows as bytes of uint8, int32 and float64; "
     "the buffer is emptied"},
    {"_close_rows", (PyCFunction)rowstore_close_rows, METH_NOARGS,
     "drop the buffer; recording on this store raises TapeClosedError from now on"},
    {NULL, NULL, 0, NULL},
};

static PyMemberDef rowstore_members[] = {
    {"_pending", T_PYSSIZET, offsetof(RowStoreObject, n), READONLY, "rows buffered"},
    {"_next", T_PYSSIZET, offsetof(RowStoreObject, next), 0, "the next slot number"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject RowStoreType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyad._speedups.RowStore",
    .tp_basicsize = sizeof(RowStoreObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE,
    .tp_doc = "The row buffer of a tape's store (base of both backends' stores).",
    .tp_dealloc = (destructor)rowstore_dealloc,
    .tp_methods = rowstore_methods,
    .tp_members = rowstore_members,
    .tp_getset = rowstore_getset,
    .tp_new = PyType_GenericNew,
};

/* ---- ScalarBase ---- */

static int scalar_init(ScalarObject *self, PyObject *args, PyObject *kwds)
{
    static char *keywords[] = {"store", "slot", NULL};
    PyObject *store;
    Py_ssize_t slot;
    if (!PyArg_ParseTupleAndKeywords(args, kwds, "On:Scalar", keywords, &store, &slot))
        return -1;
    if (self->store != NULL) {
        PyErr_SetString(PyExc_TypeError, "an active value is immutable: __init__ runs once");
        return -1;
    }
    if (slot < 0) {
        PyErr_Format(PyExc_ValueError, "a slot is not negative, got %zd", slot);
        return -1;
    }
    Py_INCREF(store);
    self->store = store;
    self->slot = slot;
    return 0;
}

static int scalar_traverse(ScalarObject *self, visitproc visit, void *arg)
{
    Py_VISIT(self->store);
    return 0;
}

static int scalar_clear(ScalarObject *self)
{
    Py_CLEAR(self->store);
    return 0;
}

static void scalar_dealloc(ScalarObject *self)
{
    PyObject_GC_UnTrack(self);
    scalar_clear(self);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

/* Buffer the row and return a new active value of `type` in its slot. */
static PyObject *record_row(PyTypeObject *type, RowStoreObject *s, long op, Py_ssize_t a,
                            double b)
{
    ScalarObject *r = (ScalarObject *)type->tp_alloc(type, 0);
    if (r == NULL)
        return NULL;
    Py_ssize_t slot = s->next;
    if (rowstore_append(s, op, a, b) < 0) {
        Py_DECREF(r);
        return NULL;
    }
    Py_INCREF(s);
    r->store = (PyObject *)s;
    r->slot = slot;
    return (PyObject *)r;
}

/* left op right where at least one of them is active. */
static PyObject *record(PyObject *left, PyObject *right, int which)
{
    const OperatorRow *row = &rows[which];
    if (row->name == NULL) {
        if (fallback == NULL) {
            PyErr_SetString(PyExc_RuntimeError, "pyad._speedups.configure() was not called");
            return NULL;
        }
        Py_RETURN_NOTIMPLEMENTED;
    }
    int reflected = !IS_ACTIVE(left);
    ScalarObject *x = (ScalarObject *)(reflected ? right : left);
    PyObject *other = reflected ? left : right;
    PyObject *store = x->store;
    if (scalar_type == NULL || store == NULL || !PyObject_TypeCheck(store, &RowStoreType))
        goto fallback;
    RowStoreObject *s = (RowStoreObject *)store;
    /* Another thread, or a closed tape: the fallback raises. A slot not yet
     * given out (only a Scalar built by hand has one) is refused there too. */
    unsigned long me = PyThread_get_thread_ident();
    if (s->owner != me || busy_elsewhere(s, me) || s->closed || x->slot >= s->next)
        goto fallback;
    PyTypeObject *type = row->boolean ? bool_type : scalar_type;

    if (IS_ACTIVE(other)) {
        ScalarObject *y = (ScalarObject *)other;
        if (y->store != store || y->slot >= s->next)
            goto fallback;  /* two tapes: the fallback raises */
        return reflected ? record_row(type, s, row->op, y->slot, (double)x->slot)
                         : record_row(type, s, row->op, x->slot, (double)y->slot);
    }
    long op = reflected ? row->const_with : row->with_const;
    if (op < 0)
        goto fallback;
    if (PyFloat_CheckExact(other))
        return record_row(type, s, op, x->slot, PyFloat_AS_DOUBLE(other));
    if (PyLong_CheckExact(other)) {
        /* An int too large for a float raises here, before anything is buffered. */
        double c = PyLong_AsDouble(other);
        if (c == -1.0 && PyErr_Occurred())
            return NULL;
        return record_row(type, s, op, x->slot, c);
    }

fallback:
    return PyObject_CallFunctionObjArgs(fallback, left, right, row->name, NULL);
}

static PyObject *scalar_add(PyObject *l, PyObject *r) { return record(l, r, OP_ADD); }
static PyObject *scalar_sub(PyObject *l, PyObject *r) { return record(l, r, OP_SUB); }
static PyObject *scalar_mul(PyObject *l, PyObject *r) { return record(l, r, OP_MUL); }
static PyObject *scalar_div(PyObject *l, PyObject *r) { return record(l, r, OP_TRUEDIV); }

static PyObject *scalar_richcompare(PyObject *self, PyObject *other, int op)
{
    /* Python calls this with an active first operand, swapping the comparison
     * for reflected cases (2.0 < x arrives as x > 2.0). */
    static const int operators[] = {[Py_LT] = OP_LT, [Py_LE] = OP_LE, [Py_EQ] = OP_EQ,
                                    [Py_NE] = OP_NE, [Py_GT] = OP_GT, [Py_GE] = OP_GE};
    if (op < Py_LT || op > Py_GE)
        Py_RETURN_NOTIMPLEMENTED;
    return record(self, other, operators[op]);
}

static PyNumberMethods scalar_number = {
    .nb_add = scalar_add,
    .nb_subtract = scalar_sub,
    .nb_multiply = scalar_mul,
    .nb_true_divide = scalar_div,
};

static PyMemberDef scalar_members[] = {
    {"_s", T_OBJECT_EX, offsetof(ScalarObject, store), READONLY, "the store of the tape"},
    {"_i", T_PYSSIZET, offsetof(ScalarObject, slot), READONLY, "the slot on the tape"},
    {NULL, 0, 0, 0, NULL},
};

static PyTypeObject ScalarBaseType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "pyad._speedups.ScalarBase",
    .tp_basicsize = sizeof(ScalarObject),
    .tp_flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .tp_doc = "The recording fast path of pyad.Scalar.",
    .tp_traverse = (traverseproc)scalar_traverse,
    .tp_clear = (inquiry)scalar_clear,
    .tp_dealloc = (destructor)scalar_dealloc,
    .tp_as_number = &scalar_number,
    .tp_richcompare = scalar_richcompare,
    .tp_members = scalar_members,
    .tp_init = (initproc)scalar_init,
    .tp_new = PyType_GenericNew,
};

/* ---- configure(Scalar, Bool, fallback, rows, TapeClosedError, b_is_slot[, message]) ---- */

static int operator_index(PyObject *key)
{
    for (int k = 0; k < N_OPERATORS; k++)
        if (PyUnicode_Check(key) && PyUnicode_CompareWithASCIIString(key, OPERATOR_NAMES[k]) == 0)
            return k;
    return -1;
}

/* An op code the fast path may buffer: a row whose b is a slot (want_slot) or
 * a constant; -1 (no constant form) where allowed. */
static int valid_code(long op, int want_slot, int allow_none, const char *slot_b,
                      Py_ssize_t n_ops)
{
    if (op == -1)
        return allow_none;
    return op >= 0 && op < n_ops && (slot_b[op] != 0) == want_slot;
}

/* One entry of configure()'s rows: (name, op, op_with_const, op_const_with, boolean). */
static int parse_operator_row(PyObject *key, PyObject *value, const char *slot_b,
                              Py_ssize_t n_ops, OperatorRow *row)
{
    PyObject *name;
    if (!PyTuple_Check(value)) {
        PyErr_Format(PyExc_TypeError, "configure: the row of %R must be a tuple", key);
        return -1;
    }
    if (!PyArg_ParseTuple(value, "Ulllp", &name, &row->op, &row->with_const,
                          &row->const_with, &row->boolean))
        return -1;
    if (!valid_code(row->op, 1, 0, slot_b, n_ops)
        || !valid_code(row->with_const, 0, 1, slot_b, n_ops)
        || !valid_code(row->const_with, 0, 1, slot_b, n_ops)) {
        PyErr_Format(PyExc_ValueError, "configure: %R: op codes %R do not name a row with "
                     "two slot operands and its constant forms", key, value);
        return -1;
    }
    row->name = name;  /* borrowed until configure() takes it */
    return 0;
}

static PyObject *configure(PyObject *module, PyObject *args)
{
    (void)module;
    PyObject *scalar, *boolean, *fb, *table, *closed, *message = NULL;
    const char *slot_b;
    Py_ssize_t n_ops;
    if (!PyArg_ParseTuple(args, "O!O!OO!Oy#|U:configure", &PyType_Type, &scalar, &PyType_Type,
                          &boolean, &fb, &PyDict_Type, &table, &closed, &slot_b, &n_ops,
                          &message))
        return NULL;
    if (n_ops > 256) {
        PyErr_SetString(PyExc_ValueError, "configure: more than 256 op codes");
        return NULL;
    }
    if (!PyType_IsSubtype((PyTypeObject *)scalar, &ScalarBaseType)
        || !PyType_IsSubtype((PyTypeObject *)boolean, (PyTypeObject *)scalar)) {
        PyErr_SetString(PyExc_TypeError, "configure: Bool must derive from Scalar, Scalar "
                                         "from ScalarBase");
        return NULL;
    }
    if (!PyCallable_Check(fb)) {
        PyErr_SetString(PyExc_TypeError, "configure: fallback must be callable");
        return NULL;
    }
    /* Parse everything before changing anything: a bad table leaves the old one. */
    OperatorRow parsed[N_OPERATORS] = {{0}};
    PyObject *key, *value;
    Py_ssize_t pos = 0;
    while (PyDict_Next(table, &pos, &key, &value)) {
        int k = operator_index(key);
        if (k < 0) {
            PyErr_Format(PyExc_KeyError, "configure: %R is not an operator of the fast path",
                         key);
            return NULL;
        }
        if (parse_operator_row(key, value, slot_b, n_ops, &parsed[k]) < 0)
            return NULL;
    }
    for (int k = 0; k < N_OPERATORS; k++) {
        Py_XINCREF(parsed[k].name);
        Py_XSETREF(rows[k].name, parsed[k].name);
        rows[k].op = parsed[k].op;
        rows[k].with_const = parsed[k].with_const;
        rows[k].const_with = parsed[k].const_with;
        rows[k].boolean = parsed[k].boolean;
    }
    memset(b_is_slot, 0, sizeof b_is_slot);
    memcpy(b_is_slot, slot_b, (size_t)n_ops);
    Py_INCREF(scalar);
    Py_INCREF(boolean);
    Py_INCREF(fb);
    Py_INCREF(closed);
    Py_XSETREF(closed_error, closed);
    if (message) {
        Py_INCREF(message);
        Py_XSETREF(closed_message, message);
    }
    Py_XSETREF(scalar_type, (PyTypeObject *)scalar);
    Py_XSETREF(bool_type, (PyTypeObject *)boolean);
    Py_XSETREF(fallback, fb);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"configure", configure, METH_VARARGS,
     "configure(Scalar, Bool, fallback, rows, TapeClosedError, b_is_slot[, closed_message]): "
     "the classes "
     "the fast path makes, the function it hands every other case to (called as "
     "fallback(x, y, row name)), {operator: (row name, op, op_with_const, op_const_with, "
     "result is a Bool)} for operators in OPERATORS (-1: no constant form; an operator "
     "left out answers NotImplemented), the error recording on a closed tape raises, "
     "bytes with 1 at each op code whose operand b is a slot, and that error's message "
     "(kept from an earlier call if not given)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "pyad._speedups",
    .m_doc = "The recording fast path of pyad's active scalars.",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC PyInit__speedups(void)
{
    if (PyType_Ready(&RowStoreType) < 0 || PyType_Ready(&ScalarBaseType) < 0)
        return NULL;
    PyObject *m = PyModule_Create(&module_def);
    if (m == NULL)
        return NULL;
    PyObject *operators = PyTuple_New(N_OPERATORS);
    for (int k = 0; operators != NULL && k < N_OPERATORS; k++) {
        PyObject *name = PyUnicode_InternFromString(OPERATOR_NAMES[k]);
        if (name == NULL)
            Py_CLEAR(operators);
        else
            PyTuple_SET_ITEM(operators, k, name);
    }
    if (operators == NULL || PyModule_AddObject(m, "OPERATORS", operators) < 0) {
        Py_XDECREF(operators);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&RowStoreType);
    if (PyModule_AddObject(m, "RowStore", (PyObject *)&RowStoreType) < 0) {
        Py_DECREF(&RowStoreType);
        Py_DECREF(m);
        return NULL;
    }
    Py_INCREF(&ScalarBaseType);
    if (PyModule_AddObject(m, "ScalarBase", (PyObject *)&ScalarBaseType) < 0) {
        Py_DECREF(&ScalarBaseType);
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
