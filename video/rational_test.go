package video

import (
	"math"
	"testing"
	"time"
)

func TestParseRational(t *testing.T) {
	tests := []struct {
		in      string
		want    Rational
		wantErr bool
	}{
		{in: "30000/1001", want: Rational{30000, 1001}},
		{in: "25/1", want: Rational{25, 1}},
		{in: "50/2", want: Rational{25, 1}},
		{in: " 24000/1001 ", want: Rational{24000, 1001}},
		{in: "30", want: Rational{30, 1}},
		{in: "29.97", want: Rational{30000, 1001}},
		{in: "12.5", want: Rational{25, 2}},
		{in: "0/0", wantErr: true},
		{in: "30/0", wantErr: true},
		{in: "0", wantErr: true},
		{in: "-30/1", wantErr: true},
		{in: "30/-1", wantErr: true},
		{in: "", wantErr: true},
		{in: "abc", wantErr: true},
		{in: "30/1/1", wantErr: true},
		{in: "NaN", wantErr: true},
		{in: "Inf", wantErr: true},
	}
	for _, tt := range tests {
		got, err := ParseRational(tt.in)
		if tt.wantErr {
			if err == nil {
				t.Errorf("ParseRational(%q) = %v, want error", tt.in, got)
			}
			continue
		}
		if err != nil || got != tt.want {
			t.Errorf("ParseRational(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestFromFloat(t *testing.T) {
	tests := []struct {
		in   float64
		want Rational
	}{
		{29.97, Rational{30000, 1001}},
		{29.97002997, Rational{30000, 1001}},
		{23.976, Rational{24000, 1001}},
		{59.94, Rational{60000, 1001}},
		{119.88, Rational{120000, 1001}},
		{30, Rational{30, 1}},
		{25.0004, Rational{25, 1}},
		{24.9995, Rational{25, 1}},
		{1, Rational{1, 1}},
		{12.5, Rational{25, 2}},
		{7.5, Rational{15, 2}},
		{0.5, Rational{1, 2}},
		{29.5, Rational{59, 2}},
		{0, Rational{}},
		{-25, Rational{}},
		{math.NaN(), Rational{}},
		{math.Inf(1), Rational{}},
	}
	for _, tt := range tests {
		if got := FromFloat(tt.in); got != tt.want {
			t.Errorf("FromFloat(%v) = %v, want %v", tt.in, got, tt.want)
		}
	}
}

func TestFromFloatIsClose(t *testing.T) {
	// Rates that snap to nothing still come back within a small error and
	// with a small denominator.
	for _, f := range []float64{14.3, 17.777, 33.3333, 0.01, 999.9, 1.2345} {
		r := FromFloat(f)
		if !r.Valid() || r.Den > 1001 {
			t.Errorf("FromFloat(%v) = %v, want a valid rate with denominator <= 1001", f, r)
			continue
		}
		if rel := math.Abs(r.Float()-f) / f; rel > 1e-3 {
			t.Errorf("FromFloat(%v) = %v = %v, relative error %.2g", f, r, r.Float(), rel)
		}
	}
}

func TestRationalMethods(t *testing.T) {
	tests := []struct {
		r       Rational
		str     string
		float   float64
		frames  int
		dur     time.Duration
		isValid bool
	}{
		{Rational{30000, 1001}, "30000/1001", 30000.0 / 1001, 30, 1001 * time.Millisecond, true},
		{Rational{25, 1}, "25/1", 25, 50, 2 * time.Second, true},
		{Rational{24000, 1001}, "24000/1001", 24000.0 / 1001, 1, 41708333 * time.Nanosecond, true},
		// Ten hours at a large denominator must not overflow.
		{Rational{30000, 1001}, "30000/1001", 30000.0 / 1001, 1078920, 35999.964e9, true},
		{Rational{}, "0/0", 0, 10, 0, false},
		{Rational{30, 0}, "30/0", 0, 10, 0, false},
	}
	for _, tt := range tests {
		if got := tt.r.String(); got != tt.str {
			t.Errorf("%#v.String() = %q, want %q", tt.r, got, tt.str)
		}
		if got := tt.r.Float(); got != tt.float {
			t.Errorf("%v.Float() = %v, want %v", tt.r, got, tt.float)
		}
		if got := tt.r.Duration(tt.frames); got != tt.dur {
			t.Errorf("%v.Duration(%d) = %v, want %v", tt.r, tt.frames, got, tt.dur)
		}
		if got := tt.r.Valid(); got != tt.isValid {
			t.Errorf("%v.Valid() = %v, want %v", tt.r, got, tt.isValid)
		}
	}
}
