// Package mask decides, for each detected person, which part of the frame
// to black out, and blacks it out. It fails closed: whatever the pose
// model returned, every detected person gets a mask.
package mask
