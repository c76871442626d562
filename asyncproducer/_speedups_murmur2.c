/* asyncproducer._speedups, murmur2: Java's Utils.murmur2 (seed 0x9747b28c), the
 * default partitioner's key hash, bit for bit; the Appender hashes keys with it, and
 * asyncproducer.partitioners uses it for bytes keys. The reference is
 * asyncproducer.partitioners._murmur2_u32 (tests/unit/test_murmur2.py: Java's own
 * vectors, and random inputs against the Python one). See _speedups.h.
 */

#include "_speedups.h"

/* Java's Utils.murmur2 (seed 0x9747b28c), as asyncproducer.partitioners._murmur2_u32. */
uint32_t
murmur2(const unsigned char *data, Py_ssize_t length)
{
    const uint32_t m = 0x5bd1e995;
    uint32_t h = 0x9747b28c ^ (uint32_t)length;
    Py_ssize_t i, end = length & ~(Py_ssize_t)3;
    for (i = 0; i < end; i += 4) {
        uint32_t k = (uint32_t)data[i] | ((uint32_t)data[i + 1] << 8) |
                     ((uint32_t)data[i + 2] << 16) | ((uint32_t)data[i + 3] << 24);
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (length & 3) {
    case 3:
        h ^= (uint32_t)data[end + 2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)data[end + 1] << 8;
        /* fall through */
    case 1:
        h ^= (uint32_t)data[end];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return h;
}

PyObject *
speedups_murmur2(PyObject *module, PyObject *data)
{
    char *buf;
    Py_ssize_t len;
    (void)module;
    if (!IS_BYTES(data)) {
        raise_not(PyExc_TypeError, data, "murmur2() takes bytes");
        return NULL;
    }
    if (PyBytes_AsStringAndSize(data, &buf, &len) < 0) {
        return NULL;
    }
    return PyLong_FromUnsignedLong(murmur2((const unsigned char *)buf, len));
}
