"""The ranges every variation of a generated line or page is drawn from, and the two styles.

``TRAIN`` and ``TEST`` differ in their parameters, not only in their seeds, so that a figure
measured on test pages is never measured on the very style the models were trained on:

- printed text (form labels, distractor words, the "letters" pages) is set in disjoint font
  families, all shipped with matplotlib (train: DejaVu and Computer Modern; test: STIX), and
  drawn from disjoint word lists;
- printed rules and boxes have disjoint colours (train: black, greys and blues; test: the red,
  green and brown "drop-out" colours of forms) and a thicker sub-range of widths in test;
- pens: test reaches thicker markers than train and not its finest pens;
- shadows: straight-edged in train (an object's edge), round soft blobs in test;
- blur: Gaussian in train, a defocus disk in test;
- the marks and print of real documents (``Document``): other end marks, separators, joins,
  flags on 1s and bars on 7s of other sizes and places, other security backgrounds (waves
  and hatching in train; rosettes and a mesh in test), other printed prefixes and fonts.

"validation" is the train style: validation pages differ from training ones by their digits
(the caller passes the validation split, the last 5,000 training images) and seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from digitrec.errors import DigitrecError
from digitrec.settings import setting

Range = tuple[float, float]
Colour = tuple[float, float, float]
STYLES = ("train", "validation", "test")
TRAIN_WORDS = (
    "Name Date Phone Total Amount Code No. Ref Ab Class Score Page Room Signature Item Qty"
)
TEST_WORDS = "Nom Datum Tel. Sum Value Key Nr. Memo Bc Group Grade Sheet Desk Sign Part Count"


@dataclass(frozen=True)
class Hand:
    """How numbers are written; sizes are in units of the digit height unless stated."""

    digits: tuple[int, int] = (1, 12)  # digits in a line sample's number
    line_height: Range = (28.0, 64.0)  # digit ink height of a line sample, in pixels
    size_jitter: float = 0.15  # digits of one number vary this much in size, either way
    max_rotation: float = 8.0  # degrees, each digit
    slant: Range = (-0.35, 0.35)  # shear of a number's digits (x shift per unit of height)
    pen: Range = (-0.35, 0.8)  # stroke radius change in MNIST pixels: fine pen .. marker
    max_slope: float = 4.0  # degrees of the baseline
    # Gaps between the ink of neighbours, in digit heights, one range drawn per number:
    gaps: tuple[Range, ...] = ((0.25, 0.8), (0.05, 0.3), (-0.05, 0.05), (-0.18, -0.03))
    ink_colours: tuple[Colour, ...] = ((0.05, 0.05, 0.08), (0.1, 0.15, 0.55), (0.15, 0.2, 0.4))
    # Other writers' shapes (off in the named styles; line and filter training may turn them on):
    elastic: float = 0.0  # the most a digit's strokes are smoothly displaced, in MNIST pixels
    low_resolution: float = 0.0  # the share of digits redrawn from 10-16 px: blurry, blocky


@dataclass(frozen=True)
class Print:
    """Printed matter: form rules and boxes, text set in fonts, and distractors."""

    # Matplotlib's fonts (``printing.font_files``) as file name patterns: its text faces, not
    # its display, symbol or math faces (DejaVu*Display, cmsy, cmex, cmmi, STIXSiz, STIXNonUni).
    fonts: tuple[str, ...] = (
        "DejaVuSans.ttf", "DejaVuSans-*", "DejaVuSansMono*", "DejaVuSerif.ttf", "DejaVuSerif-*",
        "cmr10.ttf", "cmb10.ttf", "cmss10.ttf", "cmti10.ttf", "cmtt10.ttf",
    )  # fmt: skip
    words: tuple[str, ...] = tuple(TRAIN_WORDS.split())
    rule_colours: tuple[Colour, ...] = (
        (0.1, 0.1, 0.1), (0.45, 0.45, 0.45), (0.65, 0.65, 0.68), (0.35, 0.5, 0.8),
        (0.6, 0.75, 0.9),
    )  # fmt: skip
    rule_width: tuple[int, int] = (1, 2)  # pixels at a digit height of 40 px
    # Weights of the form contexts around a line sample's number: none, comb, box, underline,
    # ruled paper, squared paper, table (pages choose theirs by layout).
    contexts: tuple[float, ...] = (0.3, 0.15, 0.1, 0.1, 0.15, 0.1, 0.1)
    label_probability: float = 0.1  # a printed word left of a line sample's number
    # Line samples without digits (text ""): what a line finder also returns from a page
    # (printed words, stamps, scribbles, specks, rule fragments, a sliver of the page's edge),
    # so that a line reader learns to read nothing there.
    empty_line_fraction: float = 0.3
    # Their kinds' weights (``pages.EMPTY_KINDS``): words and scribbles, which a reader most
    # often took for digits, twice as often as the rest.
    empty_kinds: tuple[float, ...] = (2, 1, 2, 1, 1, 1)
    field_label_probability: float = 0.8  # a comb field on a page has a printed label by it
    distractor_probability: float = 0.5  # a digit page has distractors
    stamp_colours: tuple[Colour, ...] = ((0.2, 0.3, 0.75), (0.75, 0.2, 0.25))


@dataclass(frozen=True)
class Camera:
    """Paper, light and camera: what a scan or a photo does to the page."""

    paper: Range = (0.8, 1.0)  # brightness of the paper
    fade: Range = (0.0, 0.45)  # ink and print lighter by this fraction: low contrast
    gradient: Range = (0.0, 0.45)  # brightness loss across the image
    shadow_probability: float = 0.4
    shadow: str = "edge"  # "edge": a straight soft edge; "blob": round soft patches
    shadow_depth: Range = (0.15, 0.5)
    blur: str = "gaussian"  # "gaussian" or "defocus" (a disk)
    blur_radius: Range = (0.0, 1.2)  # pixels at a digit height of 40 px
    noise: Range = (0.0, 0.05)
    jpeg_probability: float = 0.5
    jpeg_quality: tuple[int, int] = (35, 95)
    rotation: float = 15.0  # photo: degrees of the page either way
    perspective: float = 0.05  # photo: corner displacement, in page sides
    desk: Range = (0.1, 0.55)  # photo: brightness of the desk around the page
    colour_probability: float = 0.5  # photo: an RGB image (coloured ink, paper and desk)


@dataclass(frozen=True)
class Document:
    """What real documents (cheques, forms, log books) add to a written number
    (``digitrec.synth.documents``). Sizes are in digit heights; ``ELEMENTS`` there names the
    elements, and ``elements`` holds the chance of each in a document line, in that order."""

    share: float = 0.6  # of the digit lines of ``document_lines`` that hold such elements
    # separators, end_mark, joins, strike, flag_ones, bar_sevens, tight_cell, rule_through,
    # small_in_cell, scanner_margin, background, grey_paper, photo, printed:
    elements: tuple[float, ...] = (
        0.3, 0.3, 0.15, 0.03, 0.25, 0.25, 0.15, 0.08, 0.1, 0.1, 0.3, 0.2, 0.15, 0.25,
    )  # fmt: skip
    separators: tuple[str, ...] = (".", ",")  # thousands and decimal marks
    separator_size: Range = (0.08, 0.14)  # a dot's diameter; a comma's tail is twice it
    end_marks: tuple[str, ...] = ("-", "=", ".-", "stroke")
    dash_length: Range = (0.3, 0.6)
    dash_height: Range = (0.25, 0.45)  # above the baseline
    stroke_length: Range = (0.8, 2.0)  # a trailing stroke after the number
    join_height: Range = (0.1, 0.4)  # where a pen stroke joins neighbours, above the baseline
    strike_height: Range = (0.35, 0.55)  # a pen stroke through the number
    strike_bend: Range = (0.0, 0.1)  # its sag in the middle
    flag_length: Range = (0.2, 0.35)  # a continental 1's up-stroke
    flag_angle: Range = (25.0, 45.0)  # degrees below the horizontal, to the left
    bar_length: Range = (0.35, 0.5)  # a crossed 7's bar
    bar_tilt: Range = (-5.0, 5.0)  # degrees
    cell_pad: Range = (-0.06, 0.02)  # a tight cell's border from the digits (< 0: cuts them)
    small_cell: Range = (0.6, 1.1)  # a large cell's room above and below a small number
    margin_width: Range = (0.15, 0.6)  # a scanner's black border beyond the paper
    backgrounds: tuple[str, ...] = ("waves", "hatch")
    background_period: Range = (3.0, 6.0)  # pixels between its fine lines at 40 px
    background_colours: tuple[Colour, ...] = ((0.35, 0.5, 0.7), (0.4, 0.6, 0.45))
    grey_paper: Range = (0.62, 0.8)  # paper brightness of grey paper, with faint ink
    faint: Range = (0.25, 0.45)  # its ink this much lighter
    photo_tilt: Range = (0.01, 0.03)  # a phone photo's corner displacement, of the sides
    prefixes: tuple[str, ...] = ("$", "No.", "US$", "#")
    numbering: str = "No. {:06d}"  # a printed serial number above the amount
    micr_fonts: tuple[str, ...] = ("DejaVuSansMono-Bold.ttf",)  # an account line's font
    micr_marks: str = ":|"  # its symbols between the digit groups


@dataclass(frozen=True)
class PageStyle:
    """Everything a generated line or page varies, as ranges drawn from uniformly."""

    hand: Hand = Hand()
    print: Print = Print()
    camera: Camera = Camera()
    document: Document = Document()


TRAIN = PageStyle()
# The finest training pen allowed: a stroke radius 1 MNIST pixel thinner. At 0.9 thinner, strokes
# are about 5% of a digit's height (a ballpoint's) and a third of MNIST's digits break into pieces.
FINEST_PEN = -1.0
TEST = PageStyle(
    hand=Hand(pen=(-0.2, 1.1)),
    print=Print(
        fonts=("STIXGeneral*",),
        words=tuple(TEST_WORDS.split()),
        rule_colours=((0.85, 0.25, 0.25), (0.3, 0.65, 0.35), (0.6, 0.45, 0.25), (0.9, 0.5, 0.3)),
        rule_width=(2, 3),
        stamp_colours=((0.55, 0.2, 0.6), (0.2, 0.55, 0.3)),
    ),
    camera=Camera(shadow="blob", blur="defocus"),
    document=Document(
        separators=("'", ".", ","),
        separator_size=(0.15, 0.22),
        end_marks=("/-", ",-", "=", "stroke"),
        dash_length=(0.65, 0.9),
        dash_height=(0.5, 0.65),
        stroke_length=(2.2, 3.5),
        join_height=(0.55, 0.85),
        strike_height=(0.6, 0.75),
        strike_bend=(0.15, 0.3),
        flag_length=(0.38, 0.5),
        flag_angle=(50.0, 70.0),
        bar_length=(0.55, 0.7),
        bar_tilt=(8.0, 15.0),
        cell_pad=(-0.1, -0.07),
        small_cell=(1.2, 1.6),
        margin_width=(0.7, 1.2),
        backgrounds=("rosette", "mesh"),
        background_period=(6.5, 9.0),
        background_colours=((0.7, 0.35, 0.45), (0.6, 0.5, 0.3)),
        grey_paper=(0.55, 0.61),
        faint=(0.46, 0.55),
        photo_tilt=(0.035, 0.05),
        prefixes=("€", "Nr.", "£", "N°"),
        numbering="N° {:07d}",
        micr_fonts=("STIXGeneralBol.ttf",),
        micr_marks="#=",
    ),
)


@dataclass(kw_only=True)
class WriterShapes:
    """The settings of a training run (a line model's, a line filter's) that draw its training
    lines or pages in other writers' shapes (``Hand.elastic``, ``Hand.low_resolution``) and
    pens (``finest_pen``: the low end of ``Hand.pen``, below the training style's for the
    ballpoint strokes of a photographed page); the lines or crops that choose its epoch keep
    the plain training style."""

    elastic: float = setting(0.0, "the most a training digit's strokes are displaced, MNIST pixels")
    low_resolution: float = setting(0.0, "share of training digits redrawn from 10-16 px")
    finest_pen: float = setting(
        TRAIN.hand.pen[0], f"finest training pen, MNIST pixels of stroke radius (>= {FINEST_PEN})"
    )

    def training_style(self) -> PageStyle:
        """The training style with these shapes; a clear error for values out of range."""
        if self.elastic < 0 or not 0 <= self.low_resolution <= 1:
            raise DigitrecError(
                f"elastic must be at least 0 and low_resolution in [0, 1], not {self.elastic} "
                f"and {self.low_resolution}"
            )
        boldest = TRAIN.hand.pen[1]
        if not FINEST_PEN <= self.finest_pen <= boldest:
            raise DigitrecError(
                f"finest_pen must be in [{FINEST_PEN}, {boldest}] (MNIST pixels of stroke radius), "
                f"not {self.finest_pen}"
            )
        hand = replace(
            TRAIN.hand,
            elastic=self.elastic,
            low_resolution=self.low_resolution,
            pen=(self.finest_pen, boldest),
        )
        return replace(TRAIN, hand=hand)


def page_style(style: str | PageStyle) -> PageStyle:
    """The ranges of a named style ("train" and "validation" share TRAIN; "test" is TEST), or
    the given ranges."""
    if isinstance(style, PageStyle):
        return style
    if style not in STYLES:
        raise DigitrecError(f"unknown style {style!r}: expected one of {', '.join(STYLES)}")
    return TEST if style == "test" else TRAIN
