// Package geom holds the shapes the stages of the pipeline pass to each
// other, in frame pixels: person boxes and detections, keypoints and
// poses, and the regions that are blacked out. It depends on nothing, so
// the model packages (detect, pose) and the packages that use their
// answers (mask, and tracking and auditing to come) share these types
// without depending on each other.
package geom
