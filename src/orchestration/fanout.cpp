// placeholder: orchestration/fanout
