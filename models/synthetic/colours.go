package synthetic

// RGB is an 8-bit colour in RGB order (OpenCV frames are BGR).
type RGB struct{ R, G, B uint8 }

// BGR returns the colour's channels in OpenCV order.
func (c RGB) BGR() [3]uint8 { return [3]uint8{c.B, c.G, c.R} }

// Tolerance is how far (per channel, 0-255) a pixel may be from a colour
// and still count as that colour. It absorbs H.264 4:2:0 chroma loss and
// resampling; the palette below keeps every pair of colours, and the
// low-saturation backgrounds the scene generator draws, further apart.
const Tolerance = 45

// BodyColours: query k of the synthetic detector boxes all pixels of
// BodyColours[k] and reports a person with score PersonScore.
var BodyColours = []RGB{
	{R: 40, G: 80, B: 220},  // blue
	{R: 200, G: 40, B: 200}, // magenta
	{R: 30, G: 170, B: 170}, // teal
}

// GhostColour is boxed by one more query with score exactly 0.5, below the
// default threshold: a figure in this colour must never be masked at the
// default settings.
var GhostColour = RGB{R: 130, G: 130, B: 30}

// Keypoint colours the synthetic pose model looks for.
var (
	NoseColour          = RGB{R: 230, G: 30, B: 30}  // red
	LeftShoulderColour  = RGB{R: 30, G: 200, B: 40}  // green
	RightShoulderColour = RGB{R: 230, G: 220, B: 30} // yellow
)

// Synthetic detector layout: Queries queries over Classes logits (COCO's 91
// ids plus "no object", as facebook/detr-resnet-50 has).
const (
	Queries = 100
	Classes = 92
)

// PersonLogit is the person logit of a query whose colour is present (all
// other logits 0), so its softmax score is e^10/(e^10+91) ≈ 0.9959.
const PersonLogit = 10.0

// GhostLogit = ln(91), which makes the ghost query's person score exactly 0.5.
const GhostLogit = 4.51085950651685

// MetadataKey marks the models as synthetic in their ONNX metadata, so the
// program can warn that it is running demo models.
const MetadataKey = "anonymize.synthetic"
