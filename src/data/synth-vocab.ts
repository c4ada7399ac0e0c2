/**
 * Word lists of the synthetic benchmark. Each topic (the text-side latent) has its own words;
 * no topic word names a colour, a shape or a pattern, so text says nothing about the image
 * unless the `mentionVisual` knob puts a visual word in on purpose.
 */

export const TOPICS: Record<string, readonly string[]> = {
  cooking: ['recipe', 'oven', 'flour', 'garlic', 'simmer', 'dough', 'spice', 'kitchen', 'sauce', 'noodle', 'dinner', 'butter', 'skillet', 'marinade'],
  travel: ['flight', 'beach', 'hotel', 'passport', 'island', 'luggage', 'itinerary', 'hostel', 'sunset', 'museum', 'train', 'backpack', 'visa', 'airport'],
  fitness: ['workout', 'squat', 'cardio', 'gym', 'protein', 'stretch', 'plank', 'dumbbell', 'marathon', 'sweat', 'muscle', 'yoga', 'treadmill', 'reps'],
  skincare: ['serum', 'moisturizer', 'sunscreen', 'toner', 'cleanser', 'acne', 'retinol', 'pores', 'hydration', 'facemask', 'glow', 'lotion', 'collagen', 'spf'],
  gardening: ['seedling', 'soil', 'compost', 'tomato', 'prune', 'bloom', 'fern', 'mulch', 'watering', 'succulent', 'greenhouse', 'harvest', 'trowel', 'basil'],
  pets: ['puppy', 'kitten', 'leash', 'litter', 'vet', 'grooming', 'treats', 'collar', 'paws', 'adoption', 'hamster', 'kibble', 'fetch', 'whiskers'],
  gaming: ['console', 'controller', 'boss', 'quest', 'respawn', 'loot', 'speedrun', 'multiplayer', 'joystick', 'pixel', 'arcade', 'level', 'guild', 'patch'],
  finance: ['budget', 'savings', 'invest', 'stocks', 'dividend', 'mortgage', 'tax', 'retirement', 'portfolio', 'interest', 'salary', 'debt', 'crypto', 'etf'],
  photography: ['lens', 'aperture', 'shutter', 'tripod', 'exposure', 'portrait', 'bokeh', 'camera', 'raw', 'lightroom', 'iso', 'focus', 'framing', 'film'],
  music: ['guitar', 'chord', 'melody', 'piano', 'playlist', 'concert', 'vinyl', 'drums', 'lyrics', 'tempo', 'album', 'chorus', 'violin', 'bass'],
  parenting: ['toddler', 'diaper', 'stroller', 'bedtime', 'nursery', 'lullaby', 'tantrum', 'homework', 'daycare', 'newborn', 'crib', 'snack', 'playdate', 'potty'],
  study: ['exam', 'lecture', 'flashcards', 'thesis', 'library', 'deadline', 'revision', 'grammar', 'calculus', 'essay', 'semester', 'tutor', 'syllabus', 'notebook'],
  fashion: ['outfit', 'denim', 'sneakers', 'blazer', 'scarf', 'thrift', 'runway', 'jacket', 'boots', 'silk', 'tailoring', 'accessories', 'wardrobe', 'hoodie'],
  decor: ['sofa', 'rug', 'curtain', 'shelf', 'lamp', 'cushion', 'minimalist', 'houseplant', 'mirror', 'wallpaper', 'tiles', 'renovation', 'closet', 'candle'],
  coffee: ['espresso', 'latte', 'barista', 'beans', 'grinder', 'pourover', 'crema', 'mocha', 'cappuccino', 'brew', 'cafe', 'aeropress', 'caffeine', 'decaf'],
  hiking: ['trail', 'summit', 'tent', 'campfire', 'compass', 'ridge', 'canyon', 'waterfall', 'hike', 'trek', 'altitude', 'forest', 'cabin', 'lake'],
  cars: ['engine', 'tires', 'sedan', 'mileage', 'garage', 'brakes', 'turbo', 'roadtrip', 'dashboard', 'hybrid', 'gearbox', 'wax', 'horsepower', 'ev'],
  books: ['novel', 'chapter', 'author', 'paperback', 'bookstore', 'fiction', 'poetry', 'memoir', 'bookmark', 'reading', 'plot', 'kindle', 'sequel', 'bestseller'],
  tech: ['laptop', 'keyboard', 'smartphone', 'charger', 'app', 'firmware', 'monitor', 'earbuds', 'router', 'battery', 'coding', 'cloud', 'tablet', 'gadget'],
  crafts: ['knitting', 'yarn', 'crochet', 'embroidery', 'glue', 'scissors', 'origami', 'sewing', 'beads', 'quilt', 'pottery', 'clay', 'stitch', 'weaving'],
};

/** Words every topic uses (no topic signal). */
export const FILLER: readonly string[] = [
  'today', 'really', 'love', 'new', 'my', 'best', 'tips', 'guide', 'simple', 'quick', 'finally', 'favorite',
  'little', 'weekend', 'share', 'first', 'honest', 'review', 'easy', 'ideas', 'try', 'so', 'good', 'must',
  'with', 'and', 'the', 'for', 'this', 'week', 'routine', 'update', 'everyday', 'vlog', 'diary', 'again',
];

/** Visual attribute names, by attribute value (the words mentionVisual may put into the text). */
export const COLOUR_WORDS: Record<string, string> = {
  red: 'red', green: 'green', blue: 'blue', yellow: 'yellow', purple: 'purple', cyan: 'cyan',
  orange: 'orange', pink: 'pink', black: 'black',
};
export const SHAPE_WORDS: Record<string, string> = {
  circle: 'circle', square: 'square', triangle: 'triangle', star: 'star', cross: 'cross', hexagon: 'hexagon',
};
export const PATTERN_WORDS: Record<string, string> = {
  solid: 'solid', striped: 'striped', outline: 'outlined', dotted: 'dotted',
};
