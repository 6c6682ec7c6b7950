#!/usr/bin/env bash
# Extracts real test footage from Debian's opencv-doc package: vtest.avi
# (pedestrians, 768x576, 10 fps, 795 frames) and Megamind.avi (720x528,
# 23.976 fps, with AC3 audio). apt-get download needs no root and installs
# nothing.
set -euo pipefail
DEST="${1:-testdata/clips}"
mkdir -p "${DEST}"
if [[ -f "${DEST}/vtest.avi" && -f "${DEST}/Megamind.avi" ]]; then
	echo "real clips already in ${DEST}"
	exit 0
fi
work="$(mktemp -d)"
trap 'rm -rf "${work}"' EXIT
(cd "${work}" && apt-get download -qq opencv-doc 2>/dev/null || apt-get download opencv-doc)
deb="$(ls "${work}"/opencv-doc_*.deb)"
data=./usr/share/doc/opencv-doc/examples/data
dpkg-deb --fsys-tarfile "${deb}" | tar -x -C "${work}" "${data}/vtest.avi" "${data}/Megamind.avi"
for f in vtest.avi Megamind.avi; do
	install -m 0644 "${work}/${data}/${f}" "${DEST}/${f}"
done
echo "extracted vtest.avi and Megamind.avi into ${DEST}"
