package wandb

import (
	"regexp"
	"strings"
	"testing"
)

func TestSettingsFromEnv(t *testing.T) {
	for _, tc := range []struct {
		name    string
		env     map[string]string
		want    Settings // RunID checked separately when empty
		wantErr string   // the variable the error must name
	}{
		{
			name: "defaults",
			env:  map[string]string{},
			want: Settings{BaseURL: DefaultBaseURL, Project: DefaultProject, Mode: ModeOnline, Dir: "."},
		},
		{
			name: "everything set",
			env: map[string]string{
				"WANDB_API_KEY": " key123 ", "WANDB_BASE_URL": "http://wandb.local:8080/", "WANDB_ENTITY": "team",
				"WANDB_PROJECT": "faces", "WANDB_MODE": "offline", "WANDB_RUN_ID": "abc123", "WANDB_NAME": "first try",
				"WANDB_DIR": "runs/wandb-data",
			},
			want: Settings{APIKey: "key123", BaseURL: "http://wandb.local:8080", Entity: "team", Project: "faces",
				Mode: ModeOffline, RunID: "abc123", RunName: "first try", Dir: "runs/wandb-data"},
		},
		{
			name: "dryrun is offline",
			env:  map[string]string{"WANDB_MODE": "dryrun"},
			want: Settings{BaseURL: DefaultBaseURL, Project: DefaultProject, Mode: ModeOffline, Dir: "."},
		},
		{
			name: "disabled, any case",
			env:  map[string]string{"WANDB_MODE": "Disabled"},
			want: Settings{BaseURL: DefaultBaseURL, Project: DefaultProject, Mode: ModeDisabled, Dir: "."},
		},
		{name: "unknown mode", env: map[string]string{"WANDB_MODE": "sometimes"}, wantErr: "WANDB_MODE"},
		{name: "base URL without scheme", env: map[string]string{"WANDB_BASE_URL": "api.example.org"}, wantErr: "WANDB_BASE_URL"},
		{name: "run id with a slash", env: map[string]string{"WANDB_RUN_ID": "a/b"}, wantErr: "WANDB_RUN_ID"},
		{name: "project with a space", env: map[string]string{"WANDB_PROJECT": "my project"}, wantErr: "WANDB_PROJECT"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := SettingsFromEnv(func(k string) string { return tc.env[k] })
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one naming %s", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if tc.want.RunID == "" {
				if !regexp.MustCompile(`^[a-z0-9]{8}$`).MatchString(got.RunID) {
					t.Errorf("generated run id %q is not 8 of [a-z0-9]", got.RunID)
				}
				tc.want.RunID = got.RunID
			}
			if got != tc.want {
				t.Errorf("got  %+v\nwant %+v", got, tc.want)
			}
		})
	}
}

func TestNewRunIDVaries(t *testing.T) {
	seen := map[string]bool{}
	for range 20 {
		id, err := NewRunID()
		if err != nil {
			t.Fatal(err)
		}
		seen[id] = true
	}
	// 36^8 values: twenty draws colliding means the source is not random.
	if len(seen) < 20 {
		t.Errorf("20 run ids, only %d distinct", len(seen))
	}
}
