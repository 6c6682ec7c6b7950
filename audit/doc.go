// Package audit looks for faces in anonymized video with a detector that
// shares nothing with the models that placed the masks: MediaPipe's
// BlazeFace (the "back" model, for faces farther from the camera). A face
// it finds in an output frame is a leak.
package audit
