package batch

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// dataset returns n videos in nested folders, one of them corrupt.
func dataset(n int) map[string]string {
	files := map[string]string{}
	for i := range n {
		content := fmt.Sprintf("%s %d", okVideo, i)
		if i == 4 {
			content = corruptVideo
		}
		files[fmt.Sprintf("cam%d/clip%02d.mp4", i%3, i)] = content
	}
	return files
}

// runShards runs every shard of count into one OUT_DIR, as count machines
// would, and returns their report paths.
func runShards(t *testing.T, in, out string, count int) []string {
	t.Helper()
	var paths []string
	for i := range count {
		opts := testOptions(in, out)
		opts.Shard = ShardSpec{Index: i, Count: count}
		sum := runOK(t, opts, newFakeProc(), Hooks{})
		if want := filepath.Join(out, fmt.Sprintf("anonymize-report.shard-%d-of-%d.json", i, count)); sum.ReportPath != want {
			t.Fatalf("shard report at %s, want %s", sum.ReportPath, want)
		}
		validateReport(t, sum.ReportPath)
		paths = append(paths, sum.ReportPath)
	}
	return paths
}

func TestMergeReportsEqualsSingleRun(t *testing.T) {
	files := dataset(12)
	in, single := testDirs(t, files)
	whole := runOK(t, testOptions(in, single), newFakeProc(), Hooks{})
	sharded := filepath.Join(t.TempDir(), "sharded")
	paths := runShards(t, in, sharded, 3)

	merged, err := MergeReports(paths, MergeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	want := readReport(t, whole.ReportPath)
	if merged.Totals.Files != want.Totals.Files || merged.Totals.Frames != want.Totals.Frames ||
		merged.Totals.People != want.Totals.People || merged.Totals.FramesInOutputs != want.Totals.FramesInOutputs {
		t.Errorf("merged totals %+v, single run %+v", merged.Totals, want.Totals)
	}
	key := func(fs []FileReport) []string {
		var out []string
		for _, f := range fs {
			out = append(out, strings.Join([]string{f.Input, f.Output, string(f.Status), f.OutputSHA256}, " "))
		}
		return out
	}
	if got, w := key(merged.Files), key(want.Files); !slices.Equal(got, w) {
		t.Errorf("merged files\n  %s\nsingle run\n  %s", strings.Join(got, "\n  "), strings.Join(w, "\n  "))
	}
	if merged.SettingsHash != want.SettingsHash || merged.Shard != nil || len(merged.MergedFrom) != 3 || len(merged.MissingShards) != 0 {
		t.Errorf("merged header: hash %s, shard %v, from %d, missing %v", merged.SettingsHash, merged.Shard, len(merged.MergedFrom), merged.MissingShards)
	}
	if got, w := outputTree(t, sharded), outputTree(t, single); !maps.Equal(got, w) {
		t.Errorf("sharded output tree differs from the single run's:\n%v\n%v", got, w)
	}

	mergedPath := filepath.Join(t.TempDir(), "merged.json")
	if err := WriteReport(mergedPath, merged); err != nil {
		t.Fatal(err)
	}
	validateReport(t, mergedPath)
	checkTotals(t, readReport(t, mergedPath))

	partial, err := MergeReports(paths[:2], MergeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(partial.MissingShards, []int{2}) {
		t.Errorf("merge of shards 0 and 1 of 3: missing %v, want [2]", partial.MissingShards)
	}
	if _, err := MergeReports([]string{mergedPath}, MergeOptions{}); err == nil {
		t.Error("merging a merged report: no error")
	}
}

func TestMergeReportsRejects(t *testing.T) {
	files := dataset(9)
	in, single := testDirs(t, files)
	whole := runOK(t, testOptions(in, single), newFakeProc(), Hooks{})
	sharded := filepath.Join(t.TempDir(), "sharded")
	paths := runShards(t, in, sharded, 3)

	// Shard 1 redone with other settings, into a third tree.
	other := filepath.Join(t.TempDir(), "other")
	opts := testOptions(in, other)
	opts.Shard = ShardSpec{Index: 1, Count: 3}
	opts.Config.MaskScale *= 2
	otherShard := runOK(t, opts, newFakeProc(), Hooks{}).ReportPath

	tests := []struct {
		name    string
		paths   []string
		opts    MergeOptions
		wantErr string
	}{
		{"file in two reports", []string{paths[0], whole.ReportPath}, MergeOptions{}, "is in both"},
		{"same shard twice", []string{paths[0], paths[1], paths[0]}, MergeOptions{}, "are both shard 0/3"},
		{"different settings", []string{paths[0], otherShard, paths[2]}, MergeOptions{}, "different settings"},
		{"different settings allowed", []string{paths[0], otherShard, paths[2]}, MergeOptions{AllowMixedSettings: true}, ""},
		{"no reports", nil, MergeOptions{}, "no reports"},
		{"missing report", []string{filepath.Join(sharded, "nope.json")}, MergeOptions{}, "no such file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := MergeReports(tt.paths, tt.opts)
			if tt.wantErr == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m.SettingsHash != "" || m.Totals.Files.Total != len(files) {
					t.Errorf("mixed merge: hash %q, %d files", m.SettingsHash, m.Totals.Files.Total)
				}
				b, err := json.Marshal(m)
				if err != nil {
					t.Fatal(err)
				}
				if err := validateReportJSON(t, b); err != nil {
					t.Errorf("mixed merge does not match the schema: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func TestReshardingRedoesNothing(t *testing.T) {
	in, out := testDirs(t, dataset(10))
	runShards(t, in, out, 4)
	for _, n := range []int{1, 3} {
		for i := range n {
			opts := testOptions(in, out)
			opts.Shard = ShardSpec{Index: i, Count: n}
			p := newFakeProc()
			sum := runOK(t, opts, p, Hooks{})
			// Only the corrupt file is tried again.
			if calls := p.callCounts(); len(calls) > 1 || (len(calls) == 1 && calls["clip04.mp4"] != 1) {
				t.Errorf("shard %d of %d after 4 shards: processed %v", i, n, calls)
			}
			if sum.Done != 0 {
				t.Errorf("shard %d of %d: %d done, want 0", i, n, sum.Done)
			}
		}
	}
	for _, name := range []string{"state.shard-0-of-4.jsonl", "state.shard-3-of-4.jsonl", "tmp-0-of-4", "lock-0-of-4"} {
		if _, err := os.Stat(filepath.Join(out, ".anonymize", name)); err != nil {
			t.Errorf("shard file: %v", err)
		}
	}
}

func TestSchemaRejectsBadReports(t *testing.T) {
	in, out := testDirs(t, map[string]string{"a.mp4": okVideo, "b.mp4": corruptVideo})
	sum := runOK(t, testOptions(in, out), newFakeProc(), Hooks{})
	good, err := os.ReadFile(sum.ReportPath)
	if err != nil {
		t.Fatal(err)
	}
	if err := validateReportJSON(t, good); err != nil {
		t.Fatalf("valid report rejected: %v", err)
	}
	tests := []struct {
		name   string
		mutate func(r map[string]any)
	}{
		{"unknown status", func(r map[string]any) { file(r, 0)["status"] = "maybe" }},
		{"undocumented field", func(r map[string]any) { file(r, 0)["colour"] = "blue" }},
		{"undocumented totals field", func(r map[string]any) { r["totals"].(map[string]any)["speed"] = 1 }},
		{"done without sha256", func(r map[string]any) { delete(file(r, 0), "output_sha256") }},
		{"failed without error", func(r map[string]any) { delete(file(r, 1), "error") }},
		{"bad sha256", func(r map[string]any) { file(r, 0)["output_sha256"] = "xyz" }},
		{"bad time", func(r map[string]any) { r["updated"] = "yesterday" }},
		{"missing header", func(r map[string]any) { delete(r, "settings_hash") }},
		{"negative frames", func(r map[string]any) { file(r, 0)["frames"] = -1 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var r map[string]any
			if err := json.Unmarshal(good, &r); err != nil {
				t.Fatal(err)
			}
			tt.mutate(r)
			b, _ := json.Marshal(r)
			if err := validateReportJSON(t, b); err == nil {
				t.Error("schema accepted it")
			}
		})
	}
}

func file(r map[string]any, i int) map[string]any {
	return r["files"].([]any)[i].(map[string]any)
}

// TestReportEncoderMatchesEncodeReport: the encoder that keeps each file's
// JSON writes exactly the bytes of encoding the whole report, also after
// one file changes, and with no files.
func TestReportEncoderMatchesEncodeReport(t *testing.T) {
	in, out := t.TempDir(), t.TempDir()
	writeTree(t, in, dataset(6))
	sum, _ := Run(context.Background(), testOptions(in, out), newFakeProc(), Hooks{})
	r, err := ReadReport(sum.ReportPath)
	if err != nil {
		t.Fatal(err)
	}
	var enc reportEncoder
	check := func(what string) {
		t.Helper()
		got, err := enc.encode(&r)
		if err != nil {
			t.Fatal(err)
		}
		want, err := encodeReport(&r)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%s: cached encoding differs:\n%s\nwant:\n%s", what, got, want)
		}
	}
	check("first encoding")
	r.Files[2].Status, r.Files[2].Error = StatusFailed, `broken "quoted" <file>`
	enc.invalidate(2)
	check("after one file changed")
	r.Files = []FileReport{} // a run's report always has the list, if empty
	check("no files")
}

// asVersion1 rewrites a report as the first format wrote it: version 1,
// without the fields version 2 added.
func asVersion1(t *testing.T, path string) string {
	t.Helper()
	var doc map[string]any
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &doc); err != nil {
		t.Fatal(err)
	}
	doc["schema_version"] = 1
	delete(doc["totals"].(map[string]any), "audit")
	for _, f := range doc["files"].([]any) {
		file := f.(map[string]any)
		delete(file, "audit")
		if m, ok := file["masks"].(map[string]any); ok {
			delete(m, "held")
			delete(m, "backfilled")
		}
		if v, ok := file["video"].(map[string]any); ok {
			delete(v, "orientation")
		}
	}
	out := filepath.Join(t.TempDir(), "v1-"+filepath.Base(path))
	b, err = json.Marshal(doc)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(out, b, 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

func TestMergeReadsVersion1(t *testing.T) {
	files := dataset(9)
	in, _ := testDirs(t, files)
	paths := runShards(t, in, filepath.Join(t.TempDir(), "sharded"), 3)
	old := asVersion1(t, paths[1])
	validateReport(t, old) // the schema still describes version 1

	merged, err := MergeReports([]string{paths[0], old, paths[2]}, MergeOptions{})
	if err != nil {
		t.Fatalf("merge with a version 1 report: %v", err)
	}
	if merged.SchemaVersion != ReportSchemaVersion || merged.Totals.Files.Total != len(files) {
		t.Errorf("merged: version %d, %d files", merged.SchemaVersion, merged.Totals.Files.Total)
	}
	b, err := json.Marshal(merged)
	if err != nil {
		t.Fatal(err)
	}
	if err := validateReportJSON(t, b); err != nil {
		t.Errorf("merged report does not match the schema: %v", err)
	}

	// A report from a newer version is refused, saying what to do.
	var doc map[string]any
	b, _ = os.ReadFile(paths[0])
	json.Unmarshal(b, &doc)
	doc["schema_version"] = ReportSchemaVersion + 1
	b, _ = json.Marshal(doc)
	newer := filepath.Join(t.TempDir(), "newer.json")
	os.WriteFile(newer, b, 0o644)
	if _, err := MergeReports([]string{newer}, MergeOptions{}); err == nil ||
		!strings.Contains(err.Error(), fmt.Sprintf("schema version %d is not one this version reads (1 to %d); use a newer anonymize", ReportSchemaVersion+1, ReportSchemaVersion)) {
		t.Errorf("a newer report: %v", err)
	}
}
