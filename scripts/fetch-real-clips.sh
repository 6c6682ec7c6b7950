#!/usr/bin/env bash
# Extracts real test footage from Debian's opencv-doc package: vtest.avi
# (pedestrians, 768x576, 10 fps, 795 frames) and Megamind.avi (720x528,
# 23.976 fps, with AC3 audio) into DEST, and photographs for the leak
# audit's tests (messi5.jpg and basketball1.png, with faces;
# ela_original.jpg, a notebook, without) and the resize tests (aloeL.jpg, a
# plant in fine detail) into PHOTOS. apt-get download
# needs no root and installs nothing.
set -euo pipefail
DEST="${1:-testdata/clips}"
PHOTOS="${2:-testdata/photos}"
CLIPS=(vtest.avi Megamind.avi)
IMAGES=(messi5.jpg basketball1.png ela_original.jpg aloeL.jpg)
mkdir -p "${DEST}" "${PHOTOS}"
missing=0
for f in "${CLIPS[@]}"; do [[ -f "${DEST}/${f}" ]] || missing=1; done
for f in "${IMAGES[@]}"; do [[ -f "${PHOTOS}/${f}" ]] || missing=1; done
if [[ ${missing} == 0 ]]; then
	echo "real clips and photographs already in ${DEST} and ${PHOTOS}"
	exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
(cd "${work}" && apt-get download -qq opencv-doc 2>/dev/null || apt-get download opencv-doc)
deb="$(ls "${work}"/opencv-doc_*.deb)"
data=./usr/share/doc/opencv-doc/examples/data
members=()
for f in "${CLIPS[@]}" "${IMAGES[@]}"; do members+=("${data}/${f}"); done
dpkg-deb --fsys-tarfile "${deb}" | tar -x -C "${work}" "${members[@]}"
for f in "${CLIPS[@]}"; do install -m 0644 "${work}/${data}/${f}" "${DEST}/${f}"; done
for f in "${IMAGES[@]}"; do install -m 0644 "${work}/${data}/${f}" "${PHOTOS}/${f}"; done
echo "extracted ${CLIPS[*]} into ${DEST} and ${IMAGES[*]} into ${PHOTOS}"
