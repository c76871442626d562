/* asyncproducer._speedups, crc32c: CRC-32C (Castagnoli, reflected polynomial 0x82F63B78),
 * the checksum of a Kafka record batch (of its bytes from the attributes on). Here so
 * that a producer with the extension needs no crc32c package at start-up: that package's
 * import loads importlib.metadata, a tenth of a cold start. With SSE 4.2 (x86-64, checked
 * at run time) the CPU's crc32 instruction, 8 bytes a step; elsewhere tables, 8 bytes a
 * step ("slicing by 8"). The reference is the crc32c package (tests/unit/test_crc32c.py:
 * the standard check value, and random inputs, lengths and alignments against it).
 * See _speedups.h.
 */

#include "_speedups.h"

#include <string.h>

#define CRC32C_POLY 0x82F63B78u

static uint32_t crc_table[8][256];
static uint32_t (*crc_update)(uint32_t crc, const unsigned char *p, size_t n);

static uint32_t
crc_update_tables(uint32_t crc, const unsigned char *p, size_t n)
{
    while (n && ((uintptr_t)p & 7)) {
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
        n--;
    }
    while (n >= 8) {
        uint32_t low = crc ^ ((uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                              (uint32_t)p[3] << 24);
        uint32_t high = (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 |
                        (uint32_t)p[7] << 24;
        crc = crc_table[7][low & 0xff] ^ crc_table[6][(low >> 8) & 0xff] ^
              crc_table[5][(low >> 16) & 0xff] ^ crc_table[4][low >> 24] ^
              crc_table[3][high & 0xff] ^ crc_table[2][(high >> 8) & 0xff] ^
              crc_table[1][(high >> 16) & 0xff] ^ crc_table[0][high >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) {
        crc = crc_table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    }
    return crc;
}

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_SSE42_PATH 1
__attribute__((target("sse4.2"))) static uint32_t
crc_update_sse42(uint32_t crc, const unsigned char *p, size_t n)
{
    uint64_t wide;
    while (n && ((uintptr_t)p & 7)) {
        crc = __builtin_ia32_crc32qi(crc, *p++);
        n--;
    }
    wide = crc;
    while (n >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        wide = __builtin_ia32_crc32di(wide, word);
        p += 8;
        n -= 8;
    }
    crc = (uint32_t)wide;
    while (n--) {
        crc = __builtin_ia32_crc32qi(crc, *p++);
    }
    return crc;
}
#endif

void
crc32c_init(void)
{
    uint32_t i, k;
    for (i = 0; i < 256; i++) {
        uint32_t crc = i;
        for (k = 0; k < 8; k++) {
            crc = (crc >> 1) ^ (CRC32C_POLY & (0u - (crc & 1u)));
        }
        crc_table[0][i] = crc;
    }
    for (i = 0; i < 256; i++) {
        for (k = 1; k < 8; k++) {
            crc_table[k][i] = crc_table[0][crc_table[k - 1][i] & 0xff] ^ (crc_table[k - 1][i] >> 8);
        }
    }
    crc_update = crc_update_tables;
#ifdef HAVE_SSE42_PATH
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2")) {
        crc_update = crc_update_sse42;
    }
#endif
}

static PyObject *
checksum(PyObject *const *args, Py_ssize_t nargs,
         uint32_t (*update)(uint32_t crc, const unsigned char *p, size_t n))
{
    Py_buffer view;
    unsigned long value = 0;
    uint32_t crc;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "crc32c() takes data and an optional value");
        return NULL;
    }
    if (nargs == 2) {
        value = PyLong_AsUnsignedLong(args[1]);
        if (value == (unsigned long)-1 && PyErr_Occurred()) {
            return NULL;
        }
        if (value > 0xFFFFFFFFul) {
            PyErr_SetString(PyExc_OverflowError, "crc32c() value must fit in 32 bits");
            return NULL;
        }
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    crc = update((uint32_t)value ^ 0xFFFFFFFFu, (const unsigned char *)view.buf,
                     (size_t)view.len) ^ 0xFFFFFFFFu;
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(crc);
}

/* crc32c(data, value=0): as the crc32c package's function of that name (``value`` carries
 * a checksum on over more data). Any contiguous buffer. */
PyObject *
speedups_crc32c(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    return checksum(args, nargs, crc_update);
}

/* The same with the tables whatever the CPU has: the portable path, for its tests on a
 * machine whose crc32c() takes the hardware one. */
PyObject *
speedups_crc32c_tables(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    return checksum(args, nargs, crc_update_tables);
}
