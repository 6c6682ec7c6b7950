package batch

import (
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
)

// Environment variables that give a shard its defaults: Kubernetes sets
// the first in every pod of an Indexed Job; the second says how many
// shards there are (the Job's completions).
const (
	EnvShardIndex = "JOB_COMPLETION_INDEX"
	EnvShardCount = "ANONYMIZE_SHARD_COUNT"
)

// ShardSpec says which part of a dataset a run processes: the files whose
// hash modulo Count is Index. The zero value and Count 1 mean the whole
// dataset.
type ShardSpec struct {
	Index int `json:"index"`
	Count int `json:"count"`
}

// Sharded reports whether s splits the dataset.
func (s ShardSpec) Sharded() bool { return s.Count > 1 }

// Validate checks 0 <= Index < Count (a zero Count counts as 1).
func (s ShardSpec) Validate() error {
	n := max(s.Count, 1)
	if s.Count < 0 {
		return usagef("shard count %d: must be at least 1", s.Count)
	}
	if s.Index < 0 || s.Index >= n {
		return usagef("shard index %d: must be between 0 and %d for %d shards", s.Index, n-1, n)
	}
	return nil
}

// suffix names a shard's own files ("shard-3-of-8"); "" when unsharded.
func (s ShardSpec) suffix() string {
	if !s.Sharded() {
		return ""
	}
	return fmt.Sprintf("shard-%d-of-%d", s.Index, s.Count)
}

// dash names a shard's own folders ("-3-of-8"); "" when unsharded.
func (s ShardSpec) dash() string {
	if !s.Sharded() {
		return ""
	}
	return fmt.Sprintf("-%d-of-%d", s.Index, s.Count)
}

// String is "3/8", or "all" when unsharded.
func (s ShardSpec) String() string {
	if !s.Sharded() {
		return "all"
	}
	return fmt.Sprintf("%d/%d", s.Index, s.Count)
}

// ShardOf returns the shard, among count, that owns the file at the
// slash-separated relative path rel. It depends only on rel and count, so
// every machine computes the same split, and adding files to the dataset
// never moves existing ones to another shard.
func ShardOf(rel string, count int) int {
	if count <= 1 {
		return 0
	}
	h := fnv.New64a()
	h.Write([]byte(rel))
	return int(h.Sum64() % uint64(count))
}

// Shard returns the items of shard index among count, in their order.
func Shard(items []Item, index, count int) []Item {
	if count <= 1 {
		return items
	}
	var out []Item
	for _, it := range items {
		if ShardOf(it.Rel, count) == index {
			out = append(out, it)
		}
	}
	return out
}

// ShardFromEnv reads the shard defaults from EnvShardIndex and
// EnvShardCount. Neither set means the whole dataset. Only one of them set
// is an error: every pod would otherwise process the whole dataset (or
// the same shard), which silently multiplies the work.
func ShardFromEnv(getenv func(string) string) (ShardSpec, error) {
	idxStr := strings.TrimSpace(getenv(EnvShardIndex))
	cntStr := strings.TrimSpace(getenv(EnvShardCount))
	switch {
	case idxStr == "" && cntStr == "":
		return ShardSpec{Index: 0, Count: 1}, nil
	case cntStr == "":
		return ShardSpec{}, usagef("%s=%s is set but %s is not; set it to the number of shards (the Job's completions)",
			EnvShardIndex, idxStr, EnvShardCount)
	case idxStr == "":
		return ShardSpec{}, usagef("%s=%s is set but %s is not; set it to this machine's shard, 0 to %s-1",
			EnvShardCount, cntStr, EnvShardIndex, EnvShardCount)
	}
	idx, err := strconv.Atoi(idxStr)
	if err != nil {
		return ShardSpec{}, usagef("%s=%q: not a whole number", EnvShardIndex, idxStr)
	}
	cnt, err := strconv.Atoi(cntStr)
	if err != nil || cnt < 1 {
		return ShardSpec{}, usagef("%s=%q: must be a whole number of at least 1", EnvShardCount, cntStr)
	}
	s := ShardSpec{Index: idx, Count: cnt}
	if err := s.Validate(); err != nil {
		return ShardSpec{}, usagef("%s=%d, %s=%d: %w", EnvShardIndex, idx, EnvShardCount, cnt, err)
	}
	return s, nil
}
