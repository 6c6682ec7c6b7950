"""Run an ONNX file on ONNX Runtime's C library through ctypes.

The export scripts compare what an export computes with what PyTorch
computes. The usual way is onnxruntime's Python package; where that is not
installed (Debian does not package it) but the C library the program itself
loads is at hand, this runs the file on that library instead, which is also
exactly the runtime `anonymize` will run it on. Only the standard library and
numpy are needed.

Only the few OrtApi entries needed to run a session on the CPU are used. The
OrtApi table in onnxruntime_c_api.h is append-only, so their positions are
the same in every release since API version 1, which is what is asked for.
"""

import ctypes
import glob
import os

import numpy as np

# Where `make setup` puts the library in a checkout (see the Makefile).
CHECKOUT_ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CHECKOUT_GLOB = os.path.join(CHECKOUT_ROOT, ".deps", "onnxruntime", "*", "libonnxruntime.so*")

API_VERSION = 1

# Positions in struct OrtApi (onnxruntime_c_api.h).
_GET_ERROR_MESSAGE = 2
_CREATE_ENV = 3
_CREATE_SESSION = 7
_RUN = 9
_CREATE_SESSION_OPTIONS = 10
_CREATE_TENSOR_WITH_DATA_AS_ORT_VALUE = 49
_GET_TENSOR_MUTABLE_DATA = 51
_GET_TENSOR_ELEMENT_TYPE = 60
_GET_DIMENSIONS_COUNT = 61
_GET_DIMENSIONS = 62
_GET_TENSOR_TYPE_AND_SHAPE = 65
_CREATE_CPU_MEMORY_INFO = 69
_RELEASE_ENV = 92
_RELEASE_STATUS = 93
_RELEASE_MEMORY_INFO = 94
_RELEASE_SESSION = 95
_RELEASE_VALUE = 96
_RELEASE_TENSOR_TYPE_AND_SHAPE_INFO = 99
_RELEASE_SESSION_OPTIONS = 100

_LOGGING_LEVEL_ERROR = 3
_ARENA_ALLOCATOR = 1
_MEM_TYPE_DEFAULT = 0

# ONNXTensorElementDataType values of the types the contracts use.
_ELEMENT_TYPES = {np.dtype(np.float32): 1, np.dtype(np.int64): 7}
_NUMPY_TYPES = {v: k for k, v in _ELEMENT_TYPES.items()}

_P = ctypes.c_void_p
_PP = ctypes.POINTER(ctypes.c_void_p)


class _ApiBase(ctypes.Structure):
    _fields_ = [
        ("GetApi", ctypes.CFUNCTYPE(_P, ctypes.c_uint32)),
        ("GetVersionString", ctypes.CFUNCTYPE(ctypes.c_char_p)),
    ]


class Error(Exception):
    pass


def find_library(explicit=None):
    """The library to load: explicit (a flag), else $ANONYMIZE_ORT_LIB (what
    the program and its tests read), else the checkout's copy. None when
    there is none."""
    for path in (explicit, os.environ.get("ANONYMIZE_ORT_LIB")):
        if path:
            if not os.path.isfile(path):
                raise Error(f"ONNX Runtime library {path} does not exist")
            return path
    found = sorted(glob.glob(CHECKOUT_GLOB))
    return found[-1] if found else None


class Runtime:
    """One loaded library with its OrtEnv."""

    def __init__(self, path):
        self.path = path
        self._lib = ctypes.CDLL(path)
        get_base = self._lib.OrtGetApiBase
        get_base.restype = ctypes.POINTER(_ApiBase)
        base = get_base().contents
        self.version = base.GetVersionString().decode()
        api = base.GetApi(API_VERSION)
        if not api:
            raise Error(f"{path} (ONNX Runtime {self.version}) does not offer C API version {API_VERSION}")
        self._api = ctypes.cast(api, _PP)

        self._error_message = self._fn(_GET_ERROR_MESSAGE, ctypes.c_char_p, _P)
        self._release_status = self._fn(_RELEASE_STATUS, None, _P)
        env = _P()
        self._call(_CREATE_ENV, ctypes.c_int, ctypes.c_char_p, _PP)(
            _LOGGING_LEVEL_ERROR, b"anonymize-export", ctypes.byref(env)
        )
        self._env = env
        mem = _P()
        self._call(_CREATE_CPU_MEMORY_INFO, ctypes.c_int, ctypes.c_int, _PP)(
            _ARENA_ALLOCATOR, _MEM_TYPE_DEFAULT, ctypes.byref(mem)
        )
        self._mem = mem

    def _fn(self, index, restype, *argtypes):
        return ctypes.CFUNCTYPE(restype, *argtypes)(self._api[index])

    def _call(self, index, *argtypes):
        """An OrtApi entry that returns an OrtStatus*, raising on error."""
        fn = self._fn(index, _P, *argtypes)

        def call(*args):
            status = fn(*args)
            if status:
                msg = self._error_message(status).decode(errors="replace")
                self._release_status(status)
                raise Error(msg)

        return call

    def session(self, model_path):
        return Session(self, model_path)

    def close(self):
        self._fn(_RELEASE_MEMORY_INFO, None, _P)(self._mem)
        self._fn(_RELEASE_ENV, None, _P)(self._env)


class Session:
    def __init__(self, rt, model_path):
        self._rt = rt
        opts = _P()
        rt._call(_CREATE_SESSION_OPTIONS, _PP)(ctypes.byref(opts))
        sess = _P()
        try:
            rt._call(_CREATE_SESSION, _P, ctypes.c_char_p, _P, _PP)(
                rt._env, os.fsencode(model_path), opts, ctypes.byref(sess)
            )
        finally:
            rt._fn(_RELEASE_SESSION_OPTIONS, None, _P)(opts)
        self._sess = sess

    def run(self, output_names, feeds):
        """Like onnxruntime.InferenceSession.run: output_names, {name: array}."""
        rt = self._rt
        release_value = rt._fn(_RELEASE_VALUE, None, _P)
        create_tensor = rt._call(
            _CREATE_TENSOR_WITH_DATA_AS_ORT_VALUE,
            _P, _P, ctypes.c_size_t, ctypes.POINTER(ctypes.c_int64), ctypes.c_size_t, ctypes.c_int, _PP,
        )
        # The runtime reads the arrays in place: keep them (and the shape
        # buffers) referenced until the run is over.
        keep = []
        inputs = []
        try:
            for name, array in feeds.items():
                array = np.ascontiguousarray(array)
                if array.dtype not in _ELEMENT_TYPES:
                    raise Error(f"input {name}: type {array.dtype} is not supported here")
                shape = (ctypes.c_int64 * array.ndim)(*array.shape)
                value = _P()
                create_tensor(
                    rt._mem, array.ctypes.data, array.nbytes, shape, array.ndim,
                    _ELEMENT_TYPES[array.dtype], ctypes.byref(value),
                )
                keep += [array, shape]
                inputs.append((name, value))

            in_names = (ctypes.c_char_p * len(inputs))(*[n.encode() for n, _ in inputs])
            in_values = (_P * len(inputs))(*[v for _, v in inputs])
            out_names = (ctypes.c_char_p * len(output_names))(*[n.encode() for n in output_names])
            out_values = (_P * len(output_names))()
            rt._call(_RUN, _P, _P, ctypes.c_void_p, ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p,
                     ctypes.c_size_t, ctypes.c_void_p)(
                self._sess, None, in_names, in_values, len(inputs), out_names, len(output_names), out_values
            )
            try:
                return [self._to_numpy(name, out_values[i]) for i, name in enumerate(output_names)]
            finally:
                for v in out_values:
                    if v:
                        release_value(v)
        finally:
            for _, value in inputs:
                release_value(value)

    def _to_numpy(self, name, value):
        rt = self._rt
        info = _P()
        rt._call(_GET_TENSOR_TYPE_AND_SHAPE, _P, _PP)(value, ctypes.byref(info))
        try:
            elem = ctypes.c_int()
            rt._call(_GET_TENSOR_ELEMENT_TYPE, _P, ctypes.POINTER(ctypes.c_int))(info, ctypes.byref(elem))
            ndim = ctypes.c_size_t()
            rt._call(_GET_DIMENSIONS_COUNT, _P, ctypes.POINTER(ctypes.c_size_t))(info, ctypes.byref(ndim))
            dims = (ctypes.c_int64 * ndim.value)()
            rt._call(_GET_DIMENSIONS, _P, ctypes.POINTER(ctypes.c_int64), ctypes.c_size_t)(info, dims, ndim.value)
        finally:
            rt._fn(_RELEASE_TENSOR_TYPE_AND_SHAPE_INFO, None, _P)(info)
        if elem.value not in _NUMPY_TYPES:
            raise Error(f"output {name}: element type {elem.value} is not supported here")
        dtype = _NUMPY_TYPES[elem.value]
        shape = tuple(dims)
        data = _P()
        rt._call(_GET_TENSOR_MUTABLE_DATA, _P, _PP)(value, ctypes.byref(data))
        count = int(np.prod(shape, dtype=np.int64))
        if count == 0:
            return np.zeros(shape, dtype=dtype)
        buf = (ctypes.c_char * (count * dtype.itemsize)).from_address(data.value)
        # Copied: the memory belongs to the OrtValue, released after this.
        return np.frombuffer(buf, dtype=dtype).reshape(shape).copy()

    def close(self):
        if self._sess:
            self._rt._fn(_RELEASE_SESSION, None, _P)(self._sess)
            self._sess = None
