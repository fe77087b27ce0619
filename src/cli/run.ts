/** Runs the CLI from source or from dist (the bin script imports the compiled main). */
import { main } from './main.js';

await main(process.argv.slice(2));
