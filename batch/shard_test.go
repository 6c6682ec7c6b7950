package batch

import (
	"errors"
	"fmt"
	"strings"
	"testing"
)

func itemsNamed(names ...string) []Item {
	items := make([]Item, len(names))
	for i, n := range names {
		items[i] = Item{Rel: n}
	}
	return items
}

func TestShardsCoverEveryFileOnce(t *testing.T) {
	var names []string
	for i := range 200 {
		names = append(names, fmt.Sprintf("cam%d/day%d/clip%03d.mp4", i%3, i%7, i))
	}
	for _, n := range []int{1, 2, 3, 8} {
		t.Run(fmt.Sprint(n, " shards"), func(t *testing.T) {
			seen := map[string]int{}
			nonEmpty := 0
			for i := range n {
				part := Shard(itemsNamed(names...), i, n)
				if len(part) > 0 {
					nonEmpty++
				}
				for _, it := range part {
					seen[it.Rel]++
					if ShardOf(it.Rel, n) != i {
						t.Errorf("%s is in shard %d but ShardOf says %d", it.Rel, i, ShardOf(it.Rel, n))
					}
				}
			}
			for _, name := range names {
				if seen[name] != 1 {
					t.Errorf("%s is in %d shards, want 1", name, seen[name])
				}
			}
			if nonEmpty != n {
				t.Errorf("%d of %d shards got files: the hash does not spread 200 files", nonEmpty, n)
			}
		})
	}
}

func TestShardAddingFilesMovesNone(t *testing.T) {
	before := itemsNamed("a.mp4", "b/c.mp4", "d.mov", "e/f/g.mkv", "h.avi")
	after := append(itemsNamed("0.mp4", "b/a.mp4", "zz.mp4", "e/f/a.mkv"), before...)
	const n = 4
	owner := map[string]int{}
	for i := range n {
		for _, it := range Shard(before, i, n) {
			owner[it.Rel] = i
		}
	}
	for i := range n {
		for _, it := range Shard(after, i, n) {
			if o, ok := owner[it.Rel]; ok && o != i {
				t.Errorf("%s moved from shard %d to %d when files were added", it.Rel, o, i)
			}
		}
	}
}

func TestResolveShard(t *testing.T) {
	flag := func(n int) *int { return &n }
	tests := []struct {
		name         string
		index, cnt   string // the environment
		fIndex, fCnt *int   // the flags, nil when not given
		want         ShardSpec
		wantErr      string
	}{
		{name: "unset", want: ShardSpec{Index: 0, Count: 1}},
		{name: "indexed job", index: "3", cnt: "8", want: ShardSpec{Index: 3, Count: 8}},
		{name: "last shard", index: "7", cnt: "8", want: ShardSpec{Index: 7, Count: 8}},
		{name: "index out of range", index: "8", cnt: "8", wantErr: EnvShardIndex + "=8, " + EnvShardCount + "=8: shard index 8: must be between 0 and 7"},
		{name: "negative index", index: "-1", cnt: "8", wantErr: "between 0 and 7"},
		{name: "zero count", index: "0", cnt: "0", wantErr: EnvShardCount + "=0: must be at least 1"},
		{name: "index without count", index: "2", wantErr: EnvShardIndex + "=2 is given but not the number of shards"},
		{name: "count without index", cnt: "4", wantErr: EnvShardCount + "=4 is given but not this machine's shard"},
		{name: "not a number", index: "two", cnt: "4", wantErr: "not a whole number"},
		{name: "flags", fIndex: flag(1), fCnt: flag(3), want: ShardSpec{Index: 1, Count: 3}},
		{name: "flags ignore a broken environment", index: "two", cnt: "4", fIndex: flag(1), fCnt: flag(3), want: ShardSpec{Index: 1, Count: 3}},
		{name: "count flag, index from the job", index: "2", fCnt: flag(3), want: ShardSpec{Index: 2, Count: 3}},
		{name: "index flag, count from the environment", cnt: "4", fIndex: flag(0), want: ShardSpec{Index: 0, Count: 4}},
		{name: "count flag without index", fCnt: flag(3), wantErr: "--shard-count 3 is given but not this machine's shard; give --shard-index or set " + EnvShardIndex},
		{name: "index flag without count", fIndex: flag(1), wantErr: "--shard-index 1 is given but not the number of shards; give --shard-count"},
		{name: "flag index out of range", index: "3", fCnt: flag(3), wantErr: EnvShardIndex + "=3, --shard-count 3: shard index 3"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			env := map[string]string{EnvShardIndex: tt.index, EnvShardCount: tt.cnt}
			got, err := ResolveShard(tt.fIndex, tt.fCnt, env[EnvShardIndex], env[EnvShardCount])
			if tt.wantErr != "" {
				if err == nil || !errors.Is(err, ErrUsage) || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("error %v, want a usage error containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil || got != tt.want {
				t.Fatalf("got %+v, %v; want %+v", got, err, tt.want)
			}
		})
	}
}
