from worker.cli.main import app

app()
