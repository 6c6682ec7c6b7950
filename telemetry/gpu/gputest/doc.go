// Package gputest fakes NVIDIA GPUs for tests, on go-nvml's mock.
package gputest
