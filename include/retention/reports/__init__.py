"""What people read: run summaries, certificates, the DPO report, the schedule in words."""
