import { transportSuite } from './suite.js';

transportSuite('sse');
