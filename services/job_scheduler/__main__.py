from services.job_scheduler.main import main

main()
