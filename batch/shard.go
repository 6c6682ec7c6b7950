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

// ResolveShard completes the shard given on the command line from the
// environment of a Kubernetes Indexed Job: index and count are nil where
// --shard-index or --shard-count was not given, and then come from
// envIndex and envCount, the values of EnvShardIndex and EnvShardCount
// ("" when unset), which the command reads. A given flag never reads its variable,
// so a stale one cannot stop a run whose flags say it all. Neither half
// given anywhere means the whole dataset. Only one is an error: every pod
// would otherwise process the whole dataset (or the same shard), which
// silently multiplies the work.
func ResolveShard(index, count *int, envIndex, envCount string) (ShardSpec, error) {
	idx, err := resolveShardHalf(index, "--shard-index", EnvShardIndex, envIndex)
	if err != nil {
		return ShardSpec{}, err
	}
	cnt, err := resolveShardHalf(count, "--shard-count", EnvShardCount, envCount)
	if err != nil {
		return ShardSpec{}, err
	}
	switch {
	case idx.from == "" && cnt.from == "":
		return ShardSpec{Index: 0, Count: 1}, nil
	case cnt.from == "":
		return ShardSpec{}, usagef("%s is given but not the number of shards; give --shard-count or set %s (the Job's completions)",
			idx, EnvShardCount)
	case idx.from == "":
		return ShardSpec{}, usagef("%s is given but not this machine's shard; give --shard-index or set %s, 0 to %d",
			cnt, EnvShardIndex, cnt.n-1)
	case cnt.n < 1:
		return ShardSpec{}, usagef("%s: must be at least 1", cnt)
	}
	s := ShardSpec{Index: idx.n, Count: cnt.n}
	if err := s.Validate(); err != nil {
		return ShardSpec{}, usagef("%s, %s: %w", idx, cnt, err)
	}
	return s, nil
}

// shardHalf is an index or count and where it came from ("" when nowhere).
type shardHalf struct {
	n      int
	from   string
	isFlag bool
}

func (h shardHalf) String() string {
	if h.isFlag {
		return fmt.Sprintf("%s %d", h.from, h.n)
	}
	return fmt.Sprintf("%s=%d", h.from, h.n)
}

func resolveShardHalf(flagValue *int, flag, env, envValue string) (shardHalf, error) {
	if flagValue != nil {
		return shardHalf{n: *flagValue, from: flag, isFlag: true}, nil
	}
	v := strings.TrimSpace(envValue)
	if v == "" {
		return shardHalf{}, nil
	}
	n, err := strconv.Atoi(v)
	if err != nil {
		return shardHalf{}, usagef("%s=%q: not a whole number", env, v)
	}
	return shardHalf{n: n, from: env}, nil
}
