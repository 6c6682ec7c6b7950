// Package digest hashes files: models (to record and check which weights
// ran) and finished videos (to record what a batch wrote).
package digest
