#ifdef __cplusplus
extern "C" {
#endif
char* anonymize_opencv_stream_backends();
char* anonymize_opencv_writer_backends();
#ifdef __cplusplus
}
#endif
