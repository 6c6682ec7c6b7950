package track

import (
	"math/rand/v2"
	"testing"
)

// bruteForce returns the least total cost over every assignment of
// min(n, m) pairs.
func bruteForce(cost [][]float64) float64 {
	n, m := len(cost), len(cost[0])
	best := -1.0
	usedCol := make([]bool, m)
	var rec func(i, pairs int, sum float64)
	want := min(n, m)
	rec = func(i, pairs int, sum float64) {
		if pairs == want {
			if best < 0 || sum < best {
				best = sum
			}
			return
		}
		if i == n {
			return
		}
		if n-i > want-pairs { // row i may stay unmatched
			rec(i+1, pairs, sum)
		}
		for j := range m {
			if !usedCol[j] {
				usedCol[j] = true
				rec(i+1, pairs+1, sum+cost[i][j])
				usedCol[j] = false
			}
		}
	}
	rec(0, 0, 0)
	return best
}

func TestAssignIsOptimal(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for trial := range 300 {
		n, m := 1+r.IntN(5), 1+r.IntN(5)
		cost := make([][]float64, n)
		for i := range cost {
			cost[i] = make([]float64, m)
			for j := range cost[i] {
				cost[i][j] = float64(r.IntN(10))
			}
		}
		got := assign(cost)
		sum, pairs := 0.0, 0
		seen := map[int]bool{}
		for i, j := range got {
			if j < 0 {
				continue
			}
			if seen[j] {
				t.Fatalf("trial %d: column %d assigned twice: %v", trial, j, got)
			}
			seen[j] = true
			sum += cost[i][j]
			pairs++
		}
		if pairs != min(n, m) {
			t.Fatalf("trial %d: %d pairs for a %dx%d matrix", trial, pairs, n, m)
		}
		if want := bruteForce(cost); sum != want {
			t.Fatalf("trial %d: cost %v, optimum %v\n%v -> %v", trial, sum, want, cost, got)
		}
	}
}

func TestAssignBeatsGreedy(t *testing.T) {
	// Greedy would take the 1 and be left with 9: 10 in all. The optimum
	// is 2+2.
	cost := [][]float64{{1, 2}, {2, 9}}
	if got := assign(cost); got[0] != 1 || got[1] != 0 {
		t.Errorf("assign = %v, want [1 0]", got)
	}
}
