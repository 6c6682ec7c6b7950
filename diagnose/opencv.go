package diagnose

/*
#cgo pkg-config: opencv4
#cgo CXXFLAGS: -std=c++11
#include <stdlib.h>
#include "opencv.h"
*/
import "C"

import (
	"strings"
	"unsafe"
)

func takeList(p *C.char) []string {
	defer C.free(unsafe.Pointer(p))
	s := C.GoString(p)
	if s == "" {
		return nil
	}
	return strings.Split(s, ",")
}

// OpenCVBackends lists the video back-ends OpenCV can read files with and
// write files with.
func OpenCVBackends() (readers, writers []string) {
	return takeList(C.anonymize_opencv_stream_backends()), takeList(C.anonymize_opencv_writer_backends())
}
