'use strict';
// Loads the compiled addon; types live in index.d.ts beside this file.
const path = require('node:path');
module.exports = require(path.join(__dirname, '..', 'build', 'Release', 'tapswitch_native.node'));
