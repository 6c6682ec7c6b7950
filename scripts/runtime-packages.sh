#!/usr/bin/env bash
# Prints the Debian/Ubuntu packages that hold the shared libraries the given
# binaries load (from ldd), one per line, sorted: what a runtime image must
# install for them to start. The C and C++ runtimes every image has are
# left out. It fails, naming them, when ldd cannot find a library or dpkg
# owns no package for one, rather than print a list that looks complete:
# the image build then stops instead of shipping a binary that cannot
# start.
#
#   runtime-packages.sh BINARY [LIBRARY...]
#
# ldd prints paths as the loader found them (/lib/x86_64-linux-gnu/... on a
# merged-/usr system), while dpkg records /usr/lib/...: each path is
# resolved (readlink -f) and both forms are asked about.
set -euo pipefail
if [[ $# -lt 1 ]]; then
	echo "usage: runtime-packages.sh BINARY [LIBRARY...]" >&2
	exit 2
fi
missing=() paths=()
for bin in "$@"; do
	if ! deps="$(ldd "${bin}" 2>&1)"; then
		echo "runtime-packages: ldd ${bin}: ${deps}" >&2
		exit 1
	fi
	while read -r name arrow path _; do
		if [[ ${arrow} == "=>" && ${path} == "not" ]]; then
			missing+=("${name} (needed by ${bin})")
		elif [[ ${arrow} == "=>" && ${path} == /* ]]; then
			paths+=("${path}")
		fi
	done <<<"${deps}"
done
if [[ ${#missing[@]} -gt 0 ]]; then
	printf 'runtime-packages: ldd finds no %s\n' "${missing[@]}" >&2
	exit 1
fi
# One dpkg query for all of them (one per library takes minutes).
declare -A owner=()
while IFS= read -r line; do
	[[ ${line} == *": /"* ]] || continue
	pkg="${line%%: /*}"
	owner["/${line#*: /}"]="${pkg%%:*}"
done < <(
	for p in "${paths[@]}"; do readlink -f "${p}"; echo "${p}"; done | sort -u | xargs -r dpkg -S 2>/dev/null || true
)
packages=() unowned=()
for p in "${paths[@]}"; do
	resolved="$(readlink -f "${p}")"
	pkg="${owner[${resolved}]:-${owner[${p}]:-}}"
	if [[ -z ${pkg} ]]; then
		unowned+=("${p}")
	else
		packages+=("${pkg}")
	fi
done
if [[ ${#unowned[@]} -gt 0 ]]; then
	printf 'runtime-packages: no package owns %s\n' "${unowned[@]}" >&2
	exit 1
fi
printf '%s\n' "${packages[@]}" | sort -u | grep -v -E '^(libc6|libgcc-s1|libstdc\+\+6)$'
