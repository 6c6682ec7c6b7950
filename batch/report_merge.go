package batch

import (
	"cmp"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"time"
)

// MergeOptions relaxes MergeReports' checks.
type MergeOptions struct {
	// AllowMixedSettings merges reports whose settings hashes differ;
	// the merged report's SettingsHash is then empty.
	AllowMixedSettings bool
}

// MergeReports combines the reports of the shards of one dataset into
// one: files sorted by input path, totals recounted. The reports must
// share a settings hash (unless opts allows otherwise), and no file may
// be in two of them.
func MergeReports(paths []string, opts MergeOptions) (Report, error) {
	if len(paths) == 0 {
		return Report{}, usagef("no reports to merge")
	}
	var (
		m      Report
		owner  = map[string]string{}
		shards = map[ShardSpec]string{}
	)
	for i, p := range paths {
		r, err := ReadReport(p)
		if err != nil {
			return Report{}, err
		}
		shard := ShardSpec{Index: 0, Count: 1}
		if r.Shard != nil {
			shard = *r.Shard
		}
		if r.MergedFrom != nil {
			return Report{}, usagef("%s is a merged report; merge the shard reports themselves", p)
		}
		if i == 0 {
			m = r
			m.Shard, m.Files, m.MergedFrom = nil, nil, nil
		} else {
			if r.SettingsHash != m.SettingsHash && !opts.AllowMixedSettings {
				return Report{}, fmt.Errorf("%s and %s were made with different settings (hash %.12s vs %.12s); "+
					"merge reports of one configuration, or allow mixed settings", paths[0], p, m.SettingsHash, r.SettingsHash)
			}
			m.Started = minTime(m.Started, r.Started)
			m.Updated = maxTime(m.Updated, r.Updated)
			m.RunStatus = worseRun(m.RunStatus, r.RunStatus)
			m.Device = joinDistinct(m.Device, r.Device)
			m.ExecutionProvider = joinDistinct(m.ExecutionProvider, r.ExecutionProvider)
			m.ToolVersion = joinDistinct(m.ToolVersion, r.ToolVersion)
			if r.SettingsHash != m.SettingsHash {
				m.SettingsHash = ""
			}
		}
		if prev, ok := shards[shard]; ok && shard.Sharded() {
			return Report{}, fmt.Errorf("%s and %s are both shard %s", prev, p, shard)
		}
		shards[shard] = p
		m.MergedFrom = append(m.MergedFrom, MergedSource{
			Path: p, Shard: shard, SettingsHash: r.SettingsHash, RunStatus: r.RunStatus,
			ToolVersion: r.ToolVersion, Device: r.Device,
		})
		for _, f := range r.Files {
			if prev, ok := owner[f.Input]; ok {
				return Report{}, fmt.Errorf("%s is in both %s and %s; merge the reports of one split of the dataset only", f.Input, prev, p)
			}
			owner[f.Input] = p
			m.Files = append(m.Files, f)
		}
	}
	slices.SortFunc(m.Files, func(a, b FileReport) int { return cmp.Compare(a.Input, b.Input) })
	m.MissingShards = missingShards(m.MergedFrom)
	m.SchemaVersion = ReportSchemaVersion
	m.Totals = computeTotals(m.Files, m.Started, m.Updated)
	if m.Files == nil {
		m.Files = []FileReport{}
	}
	return m, nil
}

// missingShards lists the shards not merged, when all sources split the
// dataset the same way.
func missingShards(src []MergedSource) []int {
	n := src[0].Shard.Count
	have := map[int]bool{}
	for _, s := range src {
		if s.Shard.Count != n {
			return nil
		}
		have[s.Shard.Index] = true
	}
	var missing []int
	for i := range n {
		if !have[i] {
			missing = append(missing, i)
		}
	}
	return missing
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// worseRun returns the status that tells more about what is left to do.
func worseRun(a, b RunStatus) RunStatus {
	rank := func(s RunStatus) int {
		return slices.Index([]RunStatus{RunFinished, RunStopped, RunInterrupted, RunError, RunRunning}, s)
	}
	if rank(b) > rank(a) {
		return b
	}
	return a
}

// joinDistinct adds b to the comma-separated list a unless already there.
func joinDistinct(a, b string) string {
	if b == "" || slices.Contains(strings.Split(a, "; "), b) {
		return a
	}
	if a == "" {
		return b
	}
	return a + "; " + b
}

// readOldReport returns the files of the report an earlier run left, to
// carry their entries forward; a missing or unreadable report gives none.
func readOldReport(path string) (map[string]FileReport, error) {
	r, err := ReadReport(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	old := make(map[string]FileReport, len(r.Files))
	for _, f := range r.Files {
		old[f.Input] = f
	}
	return old, nil
}
