// Package synthetic builds tiny ONNX models with exactly the tensor contracts
// of DETR and TransPose whose outputs are computed from pixel colours, so
// tests and the demo can prove that coordinates travel correctly through the
// whole pipeline without the real (large, undownloadable here) weights.
//
// The scene they understand: each person is drawn in one flat body colour;
// the synthetic detector has one query per body colour that boxes every
// pixel of that colour. The synthetic pose model puts the nose heatmap peak
// on red pixels and the shoulder peaks on green (left) and yellow (right)
// pixels inside each person crop.
package synthetic
