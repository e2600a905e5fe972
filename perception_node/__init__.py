"""perception_node: Ultralytics YOLO on the camera stream (detections, tracks, debug image)."""
