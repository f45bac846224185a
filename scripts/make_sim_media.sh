#!/usr/bin/env bash
# Regenerates the simulator's stand-in Seedance outputs: service/simulator/media/<resolution>-<W>x<H>.mp4.
#
# One file per (resolution, aspect ratio) of fal's Seedance 1.5 Pro size table: 1 s, 24 fps, H.264 yuv420p,
# +faststart, no audio; a flat colour per resolution with the size drawn on it, so the files stay a few KB each.
# ffmpeg is a generation-time tool only and is NOT a project dependency. The committed files were made with the
# ffmpeg n9.0.2 static build bundled in the imageio-ffmpeg wheel:
#
#   python -m venv /tmp/ffvenv && /tmp/ffvenv/bin/pip install imageio-ffmpeg
#   FFMPEG=$(/tmp/ffvenv/bin/python -c 'import imageio_ffmpeg; print(imageio_ffmpeg.get_ffmpeg_exe())') \
#     scripts/make_sim_media.sh
#
# Environment: FFMPEG (default: ffmpeg on PATH), FONT (a TTF for drawtext; default DejaVu Sans Bold).
set -euo pipefail

FFMPEG="${FFMPEG:-ffmpeg}"
FONT="${FONT:-/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf}"
OUT="$(cd "$(dirname "$0")/.." && pwd)/service/simulator/media"

# resolution, background colour, then W x H for 16:9 4:3 1:1 3:4 9:16 21:9 (must match service/simulator/media.py).
SIZES=(
  "480p  0x2e4057 864x496 752x560 640x640 560x752 496x864 992x432"
  "720p  0x2a6041 1280x720 1112x834 960x960 834x1112 720x1280 1470x630"
  "1080p 0x5c2a5e 1920x1080 1664x1248 1440x1440 1248x1664 1080x1920 2206x946"
)

[[ -r "$FONT" ]] || { echo "font not found: $FONT (set FONT=/path/to/font.ttf)" >&2; exit 1; }
mkdir -p "$OUT"
for row in "${SIZES[@]}"; do
  read -r resolution colour dims <<<"$row"
  for wh in $dims; do
    w="${wh%x*}"
    h="${wh#*x}"
    font_size=$(( (w < h ? w : h) / 8 ))
    "$FFMPEG" -hide_banner -loglevel error -y \
      -f lavfi -i "color=c=${colour}:s=${w}x${h}:r=24:d=1" \
      -vf "drawtext=fontfile=${FONT}:text='${resolution} ${w}x${h}':fontcolor=white:fontsize=${font_size}:x=(w-text_w)/2:y=(h-text_h)/2" \
      -c:v libx264 -preset veryslow -crf 30 -tune stillimage -pix_fmt yuv420p -r 24 -frames:v 24 -an \
      -map_metadata -1 -fflags +bitexact -flags:v +bitexact -movflags +faststart \
      "$OUT/${resolution}-${w}x${h}.mp4"
  done
done
ls -l "$OUT"/*.mp4
du -ch "$OUT"/*.mp4 | tail -1
