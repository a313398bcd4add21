from django.urls import path

from proactive import segment_api

app_name = "segment"

urlpatterns = [
    path("v1/batch", segment_api.SegmentBatchView.as_view(), name="batch"),
    path("v1/track", segment_api.SegmentTrackView.as_view(), name="track"),
    path("v1/identify", segment_api.SegmentIdentifyView.as_view(), name="identify"),
    path("v1/page", segment_api.SegmentPageView.as_view(), name="page"),
    path("v1/screen", segment_api.SegmentScreenView.as_view(), name="screen"),
]
