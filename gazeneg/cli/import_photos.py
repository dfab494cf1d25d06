"""Import a folder of photos plus a CSV of targets into a gazeneg data-set folder.

    gazeneg import photos/ labels.csv --out data/me                       # filename,row,col (cells)
    gazeneg import photos/ labels.csv --screen 1440x900 --out data/me     # filename,x,y (screen pixels)
    gazeneg import photos/ labels.csv --subject me --session s2 --out data/me --resume   # add a session

The CSV: a header naming the columns (filename, row,col or x,y, optional subject, session) in any
order, or no header and filename,row,col[,subject,session] (x,y with --screen). Cells: integers are
cell centres, rows -0.5..8.5 and cols -0.5..15.5 are on the screen (its edges included). Pixels:
(0, 0) is the screen's top-left corner, (W, H) its bottom-right.
"""

import argparse

from gazeneg.cli.errors import RESUME, as_cli
from gazeneg.webcam.importer import CROPS, import_photos, parse_screen
from gazeneg.webcam.options import add_face_backend


def get_args_parser(prog: str | None = None) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=prog, description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("photos", help="folder of photos (the CSV's filenames are relative to it)")
    p.add_argument("labels", help="CSV of filename and target per photo")
    p.add_argument("--out", required=True, help="data-set folder to create (--resume to add to an existing one)")
    p.add_argument("--screen", default=None, metavar="WxH", help="screen size in pixels when the labels are "
                   "x,y screen pixels (e.g. 1440x900)")
    p.add_argument("--subject", default="user", help="subject of rows without a subject column (default user)")
    p.add_argument("--session", default="import", help="session of rows without a session column (default import)")
    p.add_argument("--crop", choices=CROPS, default="auto",
                   help="face: find the face and eyes and cut the eye strip; resize: the photos are two-eye "
                        "strips, squeeze to 96x32; eye: each photo is one eye, placed in both eye slots; auto "
                        "(default): decide from the folder's photos and say why")
    p.add_argument("--resume", action="store_true", help="add to the data set in --out (photos already "
                   "imported are skipped)")
    p.add_argument("--skip-offscreen", action="store_true", help="leave out rows whose target is off the screen "
                   "(e.g. a click on a second monitor), counted and listed in the summary, instead of stopping")
    add_face_backend(p, "--crop face's face finder, as capture's and live's (named in meta.json)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def main(argv=None, prog: str | None = None) -> int:
    args = get_args_parser(prog).parse_args(argv)
    screen = parse_screen(args.screen) if args.screen else None
    summary = import_photos(args.photos, args.labels, args.out, subject=args.subject, session=args.session,
                            crop=args.crop, screen=screen, progress=not args.quiet, resume=args.resume,
                            skip_offscreen=args.skip_offscreen, face_backend=args.face_backend)
    for line in summary.lines():
        print(line)
    return 0


cli = as_cli(main, resume=RESUME["import"])
