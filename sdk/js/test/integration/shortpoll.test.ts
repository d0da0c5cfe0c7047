import { transportSuite } from './suite.js';

transportSuite('shortpoll');
