from services.storage_stager.main import main

main()
