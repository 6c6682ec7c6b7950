#include <opencv2/videoio/registry.hpp>
#include <cstring>
#include <string>
#include "opencv.h"

// OpenCV lists its video back-ends only through C++; gocv does not wrap it.
static char* join(const std::vector<cv::VideoCaptureAPIs>& apis) {
	std::string out;
	for (size_t i = 0; i < apis.size(); i++) {
		if (i > 0) out += ",";
		out += cv::videoio_registry::getBackendName(apis[i]);
	}
	return strdup(out.c_str());
}

char* anonymize_opencv_stream_backends() { return join(cv::videoio_registry::getStreamBackends()); }
char* anonymize_opencv_writer_backends() { return join(cv::videoio_registry::getWriterBackends()); }
