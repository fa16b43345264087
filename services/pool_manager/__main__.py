from services.pool_manager.main import main

main()
