// Package models holds what the rest of the program knows about the two
// networks it runs: their tensor contracts, where model files live, the
// registry of known models and how to fetch them.
package models
