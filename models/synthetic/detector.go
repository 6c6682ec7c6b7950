package synthetic

import (
	"fmt"
	"math"
	"slices"

	"github.com/anonymize-dev/anonymize/models/onnxgraph"
)

// Tensor names of the DETR contract. They are spelled out here rather than
// taken from package models, which may itself depend on this package for the
// demo; the tests check the model against models.DETR.
const (
	detrPixelValues = "pixel_values"
	detrPixelMask   = "pixel_mask"
	detrLogits      = "logits"
	detrPredBoxes   = "pred_boxes"

	personClass   = 1           // COCO "person" in DETR's 91-id label space
	noObjectClass = Classes - 1 // DETR's extra last class
)

// emptyBox is the box of every query that sees nothing: small and centred,
// clearly not a detection even if someone ignores the logits.
var emptyBox = [4]float32{0.5, 0.5, 0.1, 0.1}

// DetectorModel returns the synthetic person detector: an ONNX model with
// DETR's inputs and outputs in which query k boxes every pixel of
// BodyColours[k], query len(BodyColours) boxes GhostColour, and all other
// queries report "no object". The bytes are the same on every call.
func DetectorModel() ([]byte, error) { return detectorModel(0) }

// DetectorModelFixedMask is DetectorModel with the pixel_mask that Hugging
// Face's exporter writes: declared side x side whatever the image size, and
// scaled to the image by nearest-neighbour sampling, as DETR scales it to
// its feature map.
func DetectorModelFixedMask(side int64) ([]byte, error) {
	if side <= 0 {
		return nil, fmt.Errorf("synthetic detector: mask side %d is invalid", side)
	}
	return detectorModel(side)
}

func detectorModel(maskSide int64) ([]byte, error) {
	g, batch, pixels, pixelMask := detrGraph("detr_synthetic", maskSide)
	b := builder{g}
	if maskSide > 0 {
		pixelMask = b.scaleMask(pixelMask, pixels)
	}

	colours := append(slices.Clone(BodyColours), GhostColour)
	if len(colours) > Queries {
		return nil, fmt.Errorf("synthetic detector: %d colours do not fit in %d queries", len(colours), Queries)
	}
	personLogits := make([]float32, len(colours))
	for k := range BodyColours {
		personLogits[k] = PersonLogit
	}
	personLogits[len(BodyColours)] = GhostLogit

	// [B,K,H,W]: where each query's colour is, ignoring the padding that
	// pixel_mask marks (DETR pads batches of different sizes).
	mask := b.op("Mul", b.colourMasks(pixels, colours), b.validPixels(pixelMask))
	present := b.reduce("ReduceMax", mask, 2, 3) // [B,K]

	shape := b.op("Shape", pixels)
	boxes := b.boxesFromMask(mask, present, b.dimSize(shape, 2), b.dimSize(shape, 3))
	logits := b.queryLogits(present, personLogits)

	// DETR always answers with Queries rows; the rest say "no object".
	rest := int64(Queries - len(colours))
	batchSize := b.Op("Gather", []string{shape, b.ints(0)}, onnxgraph.Int("axis", 0))
	noObject := make([]float32, Classes)
	noObject[noObjectClass] = PersonLogit
	g.Node("Concat", []string{logits, b.repeatRow(noObject, batchSize, rest)},
		[]string{detrLogits}, onnxgraph.Int("axis", 1))
	g.Node("Concat", []string{boxes, b.repeatRow(emptyBox[:], batchSize, rest)},
		[]string{detrPredBoxes}, onnxgraph.Int("axis", 1))

	detrOutputs(g, batch)
	g.Metadata(MetadataKey, "true")
	g.Metadata("description", fmt.Sprintf(
		"Synthetic stand-in for DETR person detection, not a trained network: query k boxes the pixels "+
			"within %d (0-255) of body colour k with person score %.4f, the next query boxes the ghost colour "+
			"with score 0.5, all other queries report no object.", Tolerance, personScore(PersonLogit)))
	return g.Marshal(opset)
}

// personScore is the softmax probability of the person class of a query
// whose person logit is l and whose other Classes-1 logits are 0.
func personScore(l float64) float64 {
	return math.Exp(l) / (math.Exp(l) + Classes - 1)
}

// validPixels turns pixel_mask [B,H,W] (1 = image, 0 = padding) into a float
// factor [B,1,H,W] that broadcasts over the queries.
func (b builder) validPixels(pixelMask string) string {
	valid := b.op("Equal", pixelMask, b.Const(onnxgraph.Int64s(nil, 1)))
	return b.unsqueeze(b.cast(valid, onnxgraph.Float32), 1)
}

// dimSize reads dimension i of a shape as a float scalar, for normalising
// pixel coordinates by the size of the tensor actually fed.
func (b builder) dimSize(shape string, i int64) string {
	size := b.Op("Gather", []string{shape, b.Const(onnxgraph.Int64s(nil, i))}, onnxgraph.Int("axis", 0))
	return b.cast(size, onnxgraph.Float32)
}

// boxesFromMask returns [B,K,4] boxes (cx, cy, w, h, normalised by the
// input's width and height) enclosing each query's mask [B,K,H,W]. Queries
// whose colour is absent get emptyBox instead of the full-image span that
// ArgMax of an all-zero profile would give.
func (b builder) boxesFromMask(mask, present, height, width string) string {
	rows := b.reduce("ReduceMax", mask, 3) // [B,K,H]: 1 where a row holds the colour
	cols := b.reduce("ReduceMax", mask, 2) // [B,K,W]
	cy, h := b.span(rows, height)
	cx, w := b.span(cols, width)
	boxes := b.Op("Concat", []string{
		b.unsqueeze(cx, 2), b.unsqueeze(cy, 2), b.unsqueeze(w, 2), b.unsqueeze(h, 2),
	}, onnxgraph.Int("axis", 2))

	found := b.unsqueeze(b.cast(present, onnxgraph.Bool), 2) // [B,K,1]
	return b.op("Where", found, boxes, b.floats([]int64{1, 1, 4}, emptyBox[:]...))
}

// span takes a [B,K,N] profile (1 where a row or column holds the colour)
// and returns the centre and extent of the run from its first to its last
// covered index, both inclusive, as fractions of size: pixel i spans
// [i, i+1), so the run covers [first, last+1).
func (b builder) span(profile, size string) (centre, extent string) {
	first := b.Op("ArgMax", []string{profile}, onnxgraph.Int("axis", 2), onnxgraph.Int("keepdims", 0))
	last := b.Op("ArgMax", []string{profile}, onnxgraph.Int("axis", 2), onnxgraph.Int("keepdims", 0),
		onnxgraph.Int("select_last_index", 1))
	first, last = b.cast(first, onnxgraph.Float32), b.cast(last, onnxgraph.Float32)
	one := b.scalar(1)
	centre = b.op("Div", b.op("Add", b.op("Add", first, last), one), b.op("Mul", size, b.scalar(2)))
	extent = b.op("Div", b.op("Add", b.op("Sub", last, first), one), size)
	return centre, extent
}

// queryLogits builds [B,K,Classes] logits from present [B,K]: the person
// logit of query k where its colour is present, the "no object" logit
// PersonLogit where it is absent, zeros elsewhere.
func (b builder) queryLogits(present string, personLogits []float32) string {
	k := int64(len(personLogits))
	person := b.op("Mul", present, b.floats([]int64{1, k}, personLogits...))
	absent := b.op("Mul", b.op("Sub", b.scalar(1), present), b.scalar(PersonLogit))
	return b.op("Add",
		b.op("Mul", b.unsqueeze(person, 2), b.oneHot(personClass)),
		b.op("Mul", b.unsqueeze(absent, 2), b.oneHot(noObjectClass)))
}

// oneHot is a [1,1,Classes] constant with a 1 at class c.
func (b builder) oneHot(c int) string {
	v := make([]float32, Classes)
	v[c] = 1
	return b.floats([]int64{1, 1, Classes}, v...)
}

// repeatRow returns row repeated into [B,n,len(row)], B read from the
// batchSize vector [1] at run time so the model accepts any batch.
func (b builder) repeatRow(row []float32, batchSize string, n int64) string {
	r := int64(len(row))
	shape := b.Op("Concat", []string{batchSize, b.ints(n, r)}, onnxgraph.Int("axis", 0))
	return b.op("Expand", b.floats([]int64{1, 1, r}, row...), shape)
}

// detrGraph starts a graph with DETR's inputs: a batch of images of any
// size and their pixel masks.
// detrGraph declares DETR's inputs; pixel_mask follows the image's size,
// or is maskSide x maskSide when maskSide > 0.
func detrGraph(name string, maskSide int64) (g *onnxgraph.Graph, batch onnxgraph.Dim, pixels, pixelMask string) {
	g = onnxgraph.New(name)
	batch, height, width := onnxgraph.Param("batch"), onnxgraph.Param("height"), onnxgraph.Param("width")
	pixels = g.Input(detrPixelValues, onnxgraph.Float32, batch, onnxgraph.Fixed(3), height, width)
	mh, mw := height, width
	if maskSide > 0 {
		mh, mw = onnxgraph.Fixed(maskSide), onnxgraph.Fixed(maskSide)
	}
	pixelMask = g.Input(detrPixelMask, onnxgraph.Int64, batch, mh, mw)
	return g, batch, pixels, pixelMask
}

// scaleMask resizes pixel_mask [B,h,w] to the [B,H,W] of pixels by
// nearest-neighbour sampling, keeping it int64.
func (b builder) scaleMask(pixelMask, pixels string) string {
	shape := b.op("Shape", pixels)
	sizes := b.Op("Concat", []string{
		b.Op("Gather", []string{shape, b.ints(0)}, onnxgraph.Int("axis", 0)),
		b.ints(1),
		b.Op("Gather", []string{shape, b.ints(2, 3)}, onnxgraph.Int("axis", 0)),
	}, onnxgraph.Int("axis", 0))
	m := b.unsqueeze(b.cast(pixelMask, onnxgraph.Float32), 1)
	m = b.Op("Resize", []string{m, "", "", sizes}, onnxgraph.String("mode", "nearest"))
	return b.cast(b.Op("Squeeze", []string{m, b.ints(1)}), onnxgraph.Int64)
}

// detrOutputs declares DETR's outputs: Queries rows of Classes logits and
// of boxes per image.
func detrOutputs(g *onnxgraph.Graph, batch onnxgraph.Dim) {
	g.Output(detrLogits, onnxgraph.Float32, batch, onnxgraph.Fixed(Queries), onnxgraph.Fixed(Classes))
	g.Output(detrPredBoxes, onnxgraph.Float32, batch, onnxgraph.Fixed(Queries), onnxgraph.Fixed(4))
}
