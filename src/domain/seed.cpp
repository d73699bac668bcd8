// Deterministic demo data generator for the reference domain services (rules documented in seed.h).
#include "domain/seed.h"

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <string_view>

#include "domain/http_util.h"
#include "common/rng.h"

namespace bff {
namespace {

using domain::FormatCents;
using domain::FormatRfc3339;

constexpr uint64_t kSeed = 0x5EEDBFFD20260105ULL;
// Stream purposes for MixSeed: each part of the data set draws from its own stream.
enum Purpose : uint64_t {
  kCombos = 1,
  kProduct,
  kRelated,
  kReviews,
  kWarehouse,
  kShelf,
  kPromotions,
  kRecommendations,
};

constexpr int kShelfOnlyModulus = 50;
constexpr int kShelfOnlyRemainder = 7;
constexpr int kOutOfStockModulus = 100;
constexpr int kOutOfStockRemainder = 93;
constexpr int kPlacementStride = 41;
constexpr int kShelfOnlyOffset = 3;
constexpr int kOutOfStockOffset = 503;
constexpr int kSpecialSlotModulus = 8;  // kSeedMinSlots: a special slot fits on every shelf

struct CategoryDef {
  const char* id;
  std::vector<const char*> brands;
  std::vector<const char*> descriptors;
  std::vector<const char*> types;
  std::vector<const char*> variants;
  int64_t price_lo_cents;
  int64_t price_hi_cents;
  const char* intro;  // placeholders: {brand} {desc} {type} {variant}
  std::vector<const char*> blurbs;
};

struct Combo {
  int brand = 0, desc = 0, type = 0, variant = 0;
};

const std::vector<CategoryDef>& Categories() {
  static const std::vector<CategoryDef> kCategories = {
      {"kitchen-knives",
       {"Nordvik", "Kaiten", "Solberg", "Ferro & Finch"},
       {"Stainless Steel", "Damascus Steel", "High-Carbon", "Ceramic"},
       {"Chef's Knife", "Santoku Knife", "Bread Knife", "Utility Knife", "Carving Knife"},
       {"15 cm", "18 cm", "20 cm", "23 cm"},
       1990,
       14900,
       "A {desc} {type} with a {variant} blade, ground and hand-finished by {brand}.",
       {"The full tang and balanced bolster keep long prep sessions comfortable.",
        "Its edge is honed to 15 degrees per side for clean, effortless cuts.",
        "A contoured handle gives a secure grip even with wet hands.",
        "Hand washing and the occasional honing keep it razor sharp for years."}},
      {"cookware",
       {"Castellan", "Hearthstone", "Ovenbird", "Nordvik"},
       {"Cast Iron", "Non-Stick", "Tri-Ply Stainless", "Enamelled"},
       {"Frying Pan", "Skillet", "Saucepan", "Casserole Dish", "Wok"},
       {"20 cm", "24 cm", "28 cm", "32 cm"},
       2490,
       18900,
       "This {variant} {desc} {type} from {brand} heats evenly from rim to centre.",
       {"It works on gas, electric and induction hobs alike.",
        "The riveted handle stays cool on the hob and is oven safe.",
        "A generous pouring lip makes sauces and gravies easy to serve.",
        "Built to last a lifetime of everyday cooking."}},
      {"breakfast",
       {"Brightfield", "Morning Mill", "Haverland", "Goldgrain"},
       {"Organic", "Wholegrain", "Gluten-Free", "Classic"},
       {"Rolled Oats", "Granola", "Muesli", "Porridge Oats", "Bran Flakes"},
       {"375 g", "500 g", "750 g", "1 kg"},
       179,
       799,
       "{brand} {desc} {type} in a {variant} resealable pack.",
       {"Made from grain grown and milled in northern Europe.", "Delicious with milk, yoghurt or fresh fruit.",
        "A good source of fibre to start the day.", "No added colours or preservatives."}},
      {"coffee",
       {"Roastwell", "Alto Verde", "Kettle & Crane", "Bramblecup"},
       {"Single Origin", "Dark Roast", "Fairtrade", "Medium Roast"},
       {"Coffee Beans", "Ground Coffee", "Espresso Beans", "Filter Coffee", "Cold Brew Blend"},
       {"250 g", "500 g", "750 g", "1 kg"},
       499,
       3299,
       "{brand} {desc} {type}, roasted in small batches and packed in {variant} bags.",
       {"Expect notes of dark chocolate, red berries and toasted nuts.",
        "A one-way valve keeps the beans fresh after roasting.",
        "Sourced directly from cooperatives that are paid above market price.",
        "Works beautifully in an espresso machine, a moka pot or a French press."}},
      {"tea",
       {"Teahouse Nine", "Lindqvist", "Silver Leaf", "Cloudpeak"},
       {"Organic", "Loose Leaf", "Fairtrade", "Premium"},
       {"Green Tea", "Earl Grey Tea", "English Breakfast Tea", "Chamomile Tea", "Rooibos"},
       {"20 Bags", "40 Bags", "100 g", "250 g"},
       249,
       1499,
       "{brand} {desc} {type}, {variant}, blended for a bright and balanced cup.",
       {"Steep for three to five minutes in freshly boiled water.",
        "Leaves are picked in spring when the flavour is at its best.",
        "Plastic-free packaging that keeps the aroma sealed in.", "Lovely on its own or with a slice of lemon."}},
      {"audio",
       {"Sonara", "Voxline", "Bluehaven", "Arcwave"},
       {"Wireless", "Noise-Cancelling", "Studio", "Sport"},
       {"Over-Ear Headphones", "On-Ear Headphones", "In-Ear Earbuds", "Portable Speaker", "Neckband Earphones"},
       {"Black", "White", "Midnight Blue", "Sand"},
       2999,
       34900,
       "Rich, detailed sound wherever you go: the {brand} {desc} {type} in {variant}.",
       {"Multipoint Bluetooth switches between laptop and phone automatically.",
        "A quick ten-minute charge gives hours of playback.",
        "Soft memory-foam cushions stay comfortable through long listening sessions.",
        "Built-in microphones keep calls clear even on a busy street."}},
      {"footwear",
       {"Stridelane", "Fjellrun", "Peakform", "Urbanfox"},
       {"Lightweight", "Waterproof", "Cushioned", "Breathable"},
       {"Running Shoe", "Walking Shoe", "Hiking Boot", "Trail Runner", "Sneaker"},
       {"EU 38", "EU 40", "EU 42", "EU 44", "EU 46"},
       4990,
       18990,
       "The {brand} {desc} {type}, size {variant}, built for mile after mile.",
       {"A responsive foam midsole returns energy with every stride.",
        "The grippy rubber outsole holds on wet pavement and loose gravel.",
        "An engineered mesh upper keeps feet cool and dry.",
        "Reflective details keep you visible on early morning runs."}},
      {"outdoor",
       {"Northbound", "Cairnline", "Wildmark", "Fjellrun"},
       {"Ultralight", "Trekking", "3-Season", "Expedition"},
       {"Tent", "Sleeping Bag", "Backpack", "Camping Stove", "Trekking Poles"},
       {"Green", "Orange", "Grey", "Navy"},
       1990,
       44900,
       "The {brand} {desc} {type} in {variant}, made for nights far from the trailhead.",
       {"Every seam is taped and tested before it leaves the factory.",
        "It packs down small enough to fit in a daypack.",
        "Recycled materials cut its footprint without adding weight.", "Backed by a lifetime repair promise."}},
      {"power-tools",
       {"Torvik", "Ironhand", "Voltline", "Bauwerk"},
       {"Brushless", "Compact", "Heavy-Duty", "Cordless"},
       {"Drill Driver", "Impact Driver", "Circular Saw", "Jigsaw", "Angle Grinder"},
       {"12 V", "18 V", "36 V", "18 V Kit"},
       4990,
       39900,
       "The {brand} {desc} {type} ({variant}) handles everyday jobs and weekend projects alike.",
       {"Batteries are interchangeable across the whole range.", "An LED work light illuminates dark corners.",
        "Electronic overload protection extends the motor's life.", "Ships with a sturdy carry case."}},
      {"bedding",
       {"Linnea", "Dunmore", "Cloudhaven", "Weave & Co"},
       {"Organic Cotton", "Washed Linen", "Bamboo", "Percale"},
       {"Duvet Cover", "Fitted Sheet", "Flat Sheet", "Pillowcase Set", "Bedspread"},
       {"135x200 cm", "155x220 cm", "200x200 cm", "240x220 cm"},
       1990,
       16900,
       "A {desc} {type} from {brand}, {variant}, soft from the very first night.",
       {"Breathable fibres keep you cool in summer and cosy in winter.", "Pre-washed for a relaxed, lived-in look.",
        "Certified free of harmful substances.", "Hidden buttons keep the duvet in place."}},
      {"toys-games",
       {"Playhaus", "Tinker Bay", "Meeple & Moss", "Brightblock"},
       {"Family", "Strategy", "Classic", "Party"},
       {"Board Game", "Card Game", "Jigsaw Puzzle", "Building Set", "Dice Game"},
       {"Standard Edition", "Deluxe Edition", "Travel Edition", "Anniversary Edition"},
       999,
       7999,
       "The {brand} {desc} {type}, {variant}, for game nights that run late.",
       {"Easy to learn in ten minutes, hard to master.", "Sturdy components survive years of enthusiastic play.",
        "Includes illustrated rules in six languages.", "A favourite with kids and grown-ups alike."}},
      {"personal-care",
       {"Verdalia", "Puraleaf", "Skandia Skin", "Olive & Ash"},
       {"Sensitive", "Argan Oil", "Unscented", "Aloe Vera"},
       {"Shampoo", "Conditioner", "Body Lotion", "Hand Cream", "Shower Gel"},
       {"75 ml", "200 ml", "250 ml", "500 ml"},
       299,
       2499,
       "{brand} {desc} {type}, {variant}, gentle enough for daily use.",
       {"Dermatologically tested on sensitive skin.", "The bottle is made from recycled plastic.",
        "Free from parabens and microplastics.", "A little goes a long way."}},
      {"pet-supplies",
       {"Pawsome", "Tailwind", "Happy Hound", "Whiskerly"},
       {"Grain-Free", "Premium", "Natural", "Sensitive"},
       {"Dry Dog Food", "Dry Cat Food", "Dog Treats", "Cat Treats", "Puppy Food"},
       {"400 g", "2 kg", "5 kg", "12 kg"},
       349,
       6499,
       "{brand} {desc} {type} in a {variant} bag, with real meat as the first ingredient.",
       {"Balanced with vitamins and minerals for everyday health.", "Crunchy kibble helps keep teeth clean.",
        "Made without artificial colours or flavours.", "Developed together with veterinary nutritionists."}},
      {"stationery",
       {"Quillmark", "Papernest", "Inkwell & Co", "Ledgerline"},
       {"Dotted", "Lined", "Recycled", "Hardcover"},
       {"Notebook", "Journal", "Sketchbook", "Planner", "Notepad"},
       {"A4", "A5", "A6", "B5"},
       349,
       3499,
       "The {brand} {desc} {type} in {variant} lies flat on the desk and travels well.",
       {"Thick, smooth paper resists fountain-pen bleed-through.",
        "Numbered pages and an index keep notes easy to find.", "An elastic closure and ribbon marker come standard.",
        "Sewn binding that opens a full 180 degrees."}},
  };
  return kCategories;
}

std::string Replace(std::string s, std::string_view key, std::string_view value) {
  for (size_t pos = s.find(key); pos != std::string::npos; pos = s.find(key, pos + value.size())) {
    s.replace(pos, key.size(), value);
  }
  return s;
}

// Lower-cases title-case words for use inside a sentence ("Noise-Cancelling" -> "noise-cancelling"),
// keeping words without lower-case letters as written (acronyms and units: "LED", "EU", "18 V", "A5").
std::string InSentence(std::string_view s) {
  std::string out(s);
  size_t start = 0;
  while (start < out.size()) {
    size_t end = out.find(' ', start);
    if (end == std::string::npos) end = out.size();
    bool has_lower = false;
    for (size_t i = start; i < end; ++i) has_lower = has_lower || std::islower(static_cast<unsigned char>(out[i]));
    if (has_lower) {
      for (size_t i = start; i < end; ++i) {
        bool part_start = i == start || out[i - 1] == '-';
        if (part_start) out[i] = static_cast<char>(std::tolower(static_cast<unsigned char>(out[i])));
      }
    }
    start = end + 1;
  }
  return out;
}

// Leading integer of a variant such as "20 cm" or "EU 42" (0 when none).
int NumberIn(std::string_view s) {
  int v = 0;
  bool seen = false;
  for (char c : s) {
    if (c >= '0' && c <= '9') {
      v = v * 10 + (c - '0');
      seen = true;
    } else if (seen) {
      break;
    }
  }
  return v;
}

template <typename T>
const T& Pick(Rng& rng, const std::vector<T>& v) {
  return v[static_cast<size_t>(rng.Range(0, static_cast<int64_t>(v.size()) - 1))];
}

nlohmann::json SpecsFor(int category, const CategoryDef& def, const Combo& c, Rng& rng) {
  const std::string desc = def.descriptors[c.desc];
  const std::string type = def.types[c.type];
  const std::string variant = def.variants[c.variant];
  nlohmann::json s = nlohmann::json::object();
  switch (category) {
    case 0:
      s["blade_length_cm"] = NumberIn(variant);
      s["material"] = InSentence(desc == "High-Carbon" ? "High-Carbon Steel" : desc);
      s["handle"] = Pick(rng, std::vector<const char*>{"pakkawood", "olive wood", "polypropylene", "G10"});
      s["dishwasher_safe"] = desc == "Stainless Steel" && rng.Chance(50);
      s["weight_g"] = rng.Range(70, 260);
      break;
    case 1:
      s["diameter_cm"] = NumberIn(variant);
      s["material"] = InSentence(desc);
      s["induction_ready"] = desc != "Enamelled" || rng.Chance(70);
      s["oven_safe_c"] = desc == "Non-Stick" ? 180 : 260;
      s["weight_g"] = rng.Range(6, 40) * 100;
      break;
    case 2: {
      int n = NumberIn(variant);
      s["weight_g"] = n == 1 ? 1000 : n;
      s["organic"] = desc == "Organic";
      s["gluten_free"] = desc == "Gluten-Free";
      s["vegan"] = type != "Granola" || rng.Chance(50);
      s["energy_kcal_per_100g"] = rng.Range(340, 460);
      break;
    }
    case 3: {
      int n = NumberIn(variant);
      s["weight_g"] = n == 1 ? 1000 : n;
      s["roast"] = desc == "Dark Roast" ? "dark" : desc == "Medium Roast" ? "medium" : "light";
      s["origin"] = Pick(rng, std::vector<const char*>{"Ethiopia", "Colombia", "Brazil", "Guatemala", "Kenya", "Peru"});
      s["fairtrade"] = desc == "Fairtrade";
      s["whole_bean"] = type.find("Beans") != std::string::npos;
      break;
    }
    case 4:
      if (variant.find("Bags") != std::string::npos) {
        s["bags"] = NumberIn(variant);
      } else {
        s["weight_g"] = NumberIn(variant);
      }
      s["organic"] = desc == "Organic";
      s["caffeinated"] = type != "Chamomile Tea" && type != "Rooibos";
      s["steep_minutes"] = rng.Range(2, 6);
      break;
    case 5:
      s["colour"] = InSentence(variant);
      s["battery_h"] = rng.Range(8, 60);
      s["bluetooth_version"] = Pick(rng, std::vector<const char*>{"5.0", "5.2", "5.3"});
      s["noise_cancelling"] = desc == "Noise-Cancelling";
      s["water_resistance"] = desc == "Sport" ? "IPX5" : "IPX4";
      s["weight_g"] = rng.Range(5, 80) * 5;
      break;
    case 6:
      s["size_eu"] = NumberIn(variant);
      s["waterproof"] = desc == "Waterproof";
      s["drop_mm"] = rng.Range(4, 12);
      s["weight_g"] = rng.Range(22, 60) * 10;
      s["upper"] = Pick(rng, std::vector<const char*>{"engineered mesh", "leather", "recycled knit", "suede"});
      break;
    case 7:
      s["colour"] = InSentence(variant);
      s["weight_g"] = rng.Range(3, 40) * 50;
      s["season_rating"] = desc == "Expedition" ? 4 : 3;
      s["packed_size_cm"] = std::to_string(rng.Range(20, 45)) + "x" + std::to_string(rng.Range(10, 25));
      break;
    case 8: {
      s["voltage_v"] = NumberIn(variant);
      bool kit = variant.find("Kit") != std::string::npos;
      s["battery_included"] = kit;
      s["battery_ah"] = kit ? 4.0 : 0.0;
      s["no_load_rpm"] = rng.Range(15, 60) * 100;
      s["brushless"] = desc == "Brushless";
      s["weight_g"] = rng.Range(9, 35) * 100;
      break;
    }
    case 9:
      s["dimensions_cm"] = variant.substr(0, variant.find(' '));
      s["material"] = InSentence(desc);
      s["thread_count"] = rng.Range(18, 60) * 10;
      s["wash_temp_c"] = desc == "Washed Linen" ? 40 : 60;
      break;
    case 10:
      s["min_age"] = rng.Range(3, 14);
      s["players"] = std::to_string(rng.Range(1, 2)) + "-" + std::to_string(rng.Range(4, 8));
      s["playing_time_min"] = rng.Range(2, 12) * 10;
      s["pieces"] = type == "Jigsaw Puzzle" ? rng.Range(1, 4) * 500 : rng.Range(20, 400);
      break;
    case 11:
      s["volume_ml"] = NumberIn(variant);
      s["skin_type"] = desc == "Sensitive" ? "sensitive" : "all";
      s["vegan"] = rng.Chance(70);
      s["fragrance_free"] = desc == "Unscented";
      break;
    case 12: {
      int n = NumberIn(variant);
      s["weight_g"] = variant.find("kg") != std::string::npos ? n * 1000 : n;
      s["animal"] = type.find("Cat") != std::string::npos ? "cat" : "dog";
      s["life_stage"] = type == "Puppy Food" ? "puppy" : "adult";
      s["grain_free"] = desc == "Grain-Free";
      break;
    }
    case 13:
      s["format"] = variant;
      s["pages"] = rng.Range(4, 12) * 20;
      s["paper_gsm"] = rng.Range(7, 12) * 10;
      s["recycled"] = desc == "Recycled";
      s["ruling"] = desc == "Dotted" ? "dotted" : desc == "Lined" ? "lined" : "plain";
      break;
    default:
      break;
  }
  return s;
}

// Ends a price the way shops do: x.99, x.49, x.95 or x.00.
int64_t ShopPrice(int64_t cents, Rng& rng) {
  static constexpr int64_t kEndings[] = {99, 99, 49, 95, 0};
  int64_t euros = std::max<int64_t>(1, cents / 100);
  int64_t ending = kEndings[rng.Range(0, 4)];
  return ending == 0 ? euros * 100 : (euros - 1) * 100 + ending;
}

const std::vector<const char*>& ReviewerNames() {
  static const std::vector<const char*> kNames = {
      "Anna", "Ben",  "Clara", "David", "Elif",  "Felix",  "Greta",  "Hugo", "Ines",  "Jonas", "Katja",
      "Lars", "Maya", "Nils",  "Olga",  "Pavel", "Quinn",  "Rosa",   "Sami", "Tilda", "Umar",  "Vera",
      "Wim",  "Yara", "Zoe",   "Aleks", "Bruno", "Chiara", "Dmitri", "Emma", "Farid", "Hanna"};
  return kNames;
}

struct ReviewText {
  std::vector<const char*> titles;
  std::vector<const char*> openers;  // {type} placeholder
  std::vector<const char*> closers;
};

const ReviewText& ReviewTextFor(int rating) {
  static const ReviewText kTexts[5] = {
      {{"Poor quality", "Would not buy again", "Very disappointed"},
       {"The {type} broke within the first week.", "Sadly the {type} looked nothing like the pictures."},
       {"I returned it.", "Cannot recommend it.", "Save your money."}},
      {{"Disappointing", "Not great", "Expected more"},
       {"The {type} is okay at best for the price.", "I had high hopes for this {type}."},
       {"Customer service was helpful, though.", "It does not feel built to last.", "Probably will not reorder."}},
      {{"Okay", "Does the job", "Mixed feelings"},
       {"The {type} does what it says, nothing more.", "Decent {type}, but a few rough edges."},
       {"Fine for the price.", "Delivery was quick.", "Might buy again on sale."}},
      {{"Very good", "Solid choice", "Happy with it", "Good value"},
       {"Been using the {type} daily for a month now.", "A well made {type} that feels sturdy."},
       {"Would recommend it to friends.", "Only small niggles, nothing serious.", "Good value overall."}},
      {{"Excellent", "Love it", "Exactly what I needed", "Best purchase this year"},
       {"This {type} exceeded my expectations.", "Bought the {type} as a gift and ended up getting one for myself."},
       {"Absolutely recommend it.", "Five stars, no hesitation.", "Quality you can feel."}},
  };
  return kTexts[std::clamp(rating, 1, 5) - 1];
}

const std::vector<const char*>& PromotionLabels() {
  static const std::vector<const char*> kLabels = {"Winter sale",  "Spring offer", "Weekend deal",
                                                   "Member price", "Bundle saver", "Clearance"};
  return kLabels;
}

int SpecialShelfNumber(int m, int offset) { return (m * kPlacementStride + offset) % kSeedShelfCount; }

}  // namespace

std::string SeedSku(int i) { return "SKU-" + std::to_string(kSeedFirstSkuNumber + i); }

std::string SeedStoreId(int store) {
  char buf[32];
  std::snprintf(buf, sizeof(buf), "store-%02d", store);
  return buf;
}

std::string SeedShelfId(int store, int shelf) {
  char buf[40];
  std::snprintf(buf, sizeof(buf), "shelf-%02d-%02d", store, shelf);
  return buf;
}

std::string SeedShelfIdByNumber(int n) {
  return SeedShelfId(n / kSeedShelvesPerStore + 1, n % kSeedShelvesPerStore + 1);
}

bool IsShelfOnlySkuIndex(int i) {
  return i >= 0 && i < kSeedProductCount && i % kShelfOnlyModulus == kShelfOnlyRemainder;
}

bool IsOutOfStockSkuIndex(int i) {
  return i >= 0 && i < kSeedProductCount && i % kOutOfStockModulus == kOutOfStockRemainder;
}

SeedSlotRef SeedShelfOnlyProduct(int n) {
  n = std::clamp(n, 0, kSeedShelfOnlyCount - 1);
  return {SeedSku(n * kShelfOnlyModulus + kShelfOnlyRemainder),
          SeedShelfIdByNumber(SpecialShelfNumber(n, kShelfOnlyOffset)), n % kSpecialSlotModulus};
}

SeedSlotRef SeedOutOfStockProduct(int n) {
  n = std::clamp(n, 0, kSeedOutOfStockCount - 1);
  return {SeedSku(n * kOutOfStockModulus + kOutOfStockRemainder),
          SeedShelfIdByNumber(SpecialShelfNumber(n, kOutOfStockOffset)), n % kSpecialSlotModulus};
}

std::string SeedOutOfStockSku(int n) { return SeedOutOfStockProduct(n).sku; }

const std::vector<SeedUser>& SeedDemoUsers() {
  static const std::vector<SeedUser> kUsers = {
      {"u-1001", "alice", "demo-alice", "Alice Martin", "alice@example.com"},
      {"u-1002", "bob", "demo-bob", "Bob Schneider", "bob@example.com"},
      {"u-1003", "carol", "demo-carol", "Carol Dubois", "carol@example.com"},
      {"u-1004", "dave", "demo-dave", "Dave Rossi", "dave@example.com"},
      {"u-1005", "erin", "demo-erin", "Erin Novak", "erin@example.com"},
  };
  return kUsers;
}

SeedData GenerateSeed() {
  const auto& cats = Categories();
  static_assert(kSeedCategoryCount == 14);
  SeedData data;
  data.products.resize(kSeedProductCount);

  // Unique names: every category's brand/descriptor/type/variant combinations, shuffled once.
  std::vector<std::vector<Combo>> combos(cats.size());
  for (size_t c = 0; c < cats.size(); ++c) {
    const auto& def = cats[c];
    for (int b = 0; b < static_cast<int>(def.brands.size()); ++b)
      for (int d = 0; d < static_cast<int>(def.descriptors.size()); ++d)
        for (int t = 0; t < static_cast<int>(def.types.size()); ++t)
          for (int v = 0; v < static_cast<int>(def.variants.size()); ++v) combos[c].push_back({b, d, t, v});
    Rng rng(MixSeed(kSeed, kCombos, c));
    for (size_t i = combos[c].size() - 1; i > 0; --i) {
      std::swap(combos[c][i], combos[c][static_cast<size_t>(rng.Range(0, static_cast<int64_t>(i)))]);
    }
  }

  std::vector<std::vector<int>> by_category(cats.size());
  for (int i = 0; i < kSeedProductCount; ++i) by_category[static_cast<size_t>(i % kSeedCategoryCount)].push_back(i);

  for (int i = 0; i < kSeedProductCount; ++i) {
    const int cat = i % kSeedCategoryCount;
    const auto& def = cats[static_cast<size_t>(cat)];
    const Combo& combo = combos[static_cast<size_t>(cat)][static_cast<size_t>(i / kSeedCategoryCount)];
    Rng rng(MixSeed(kSeed, kProduct, static_cast<uint64_t>(i)));
    SeedProduct& p = data.products[static_cast<size_t>(i)];
    p.sku = SeedSku(i);
    p.category = def.id;

    const std::string brand = def.brands[combo.brand];
    const std::string desc = def.descriptors[combo.desc];
    const std::string type = def.types[combo.type];
    const std::string variant = def.variants[combo.variant];
    const std::string name = brand + " " + desc + " " + type + " " + variant;

    std::string description = def.intro;
    description = Replace(description, "{brand}", brand);
    description = Replace(description, "{desc}", InSentence(desc));
    description = Replace(description, "{type}", InSentence(type));
    description = Replace(description, "{variant}", InSentence(variant));
    int first = static_cast<int>(rng.Range(0, static_cast<int64_t>(def.blurbs.size()) - 1));
    description += std::string(" ") + def.blurbs[static_cast<size_t>(first)];
    if (rng.Chance(60)) {
      description += std::string(" ") + def.blurbs[static_cast<size_t>(first + 1) % def.blurbs.size()];
    }

    int64_t base = rng.Range(def.price_lo_cents, def.price_hi_cents);
    base = base * (100 + 12 * combo.variant) / 100;
    p.price_cents = ShopPrice(base, rng);
    int64_t margin_tenths = rng.Range(150, 550);
    int64_t wholesale = (p.price_cents * (1000 - margin_tenths) + 500) / 1000;

    nlohmann::json images = nlohmann::json::array();
    int image_count = static_cast<int>(rng.Range(3, 5));
    const std::string image_base = "https://img.bffd.example/p/" + p.sku + "/";
    for (int k = 1; k <= image_count; ++k) images.push_back(image_base + std::to_string(k) + ".jpg");

    const auto& peers = by_category[static_cast<size_t>(cat)];
    Rng rel(MixSeed(kSeed, kRelated, static_cast<uint64_t>(i)));
    nlohmann::json related = nlohmann::json::array();
    int related_count = static_cast<int>(rel.Range(4, 6));
    std::vector<int> chosen;
    while (static_cast<int>(chosen.size()) < related_count) {
      int other = Pick(rel, peers);
      if (other == i || std::find(chosen.begin(), chosen.end(), other) != chosen.end()) continue;
      chosen.push_back(other);
      related.push_back(SeedSku(other));
    }

    int64_t updated = kSeedEpochUnix - rng.Range(1, 120) * 86400 - rng.Range(0, 86399);

    nlohmann::json& doc = p.doc;
    doc["sku"] = p.sku;
    doc["name"] = name;
    doc["brand"] = brand;
    doc["description"] = description;
    doc["specs"] = SpecsFor(cat, def, combo, rng);
    doc["price"] = FormatCents(p.price_cents);
    doc["currency"] = kSeedCurrency;
    doc["images"] = images;
    doc["thumbnail_url"] = image_base + "thumb.jpg";
    doc["category"] = def.id;
    doc["related_skus"] = related;
    doc["wholesale_cost"] = FormatCents(wholesale);
    doc["margin_pct"] = static_cast<double>(margin_tenths) / 10.0;
    doc["updated_at"] = FormatRfc3339(updated);

    // Reviews.
    Rng rv(MixSeed(kSeed, kReviews, static_cast<uint64_t>(i)));
    int review_count = static_cast<int>(rv.Range(0, 25));
    int quality = static_cast<int>(rv.Range(3, 4));
    const auto& names = ReviewerNames();
    for (int k = 1; k <= review_count; ++k) {
      int roll = static_cast<int>(rv.Range(0, 99));
      int rating = std::clamp(quality + (roll < 8 ? -2 : roll < 25 ? -1 : roll < 60 ? 0 : 1), 1, 5);
      const ReviewText& text = ReviewTextFor(rating);
      SeedReview r;
      char id[48];
      std::snprintf(id, sizeof(id), "rv-%d-%02d", kSeedFirstSkuNumber + i, k);
      r.id = id;
      r.sku = p.sku;
      r.author = std::string(Pick(rv, names)) + " " + static_cast<char>('A' + rv.Range(0, 25)) + ".";
      r.rating = rating;
      r.title = Pick(rv, text.titles);
      r.body = Replace(Pick(rv, text.openers), "{type}", InSentence(type)) + " " + Pick(rv, text.closers);
      r.created_unix = kSeedEpochUnix - rv.Range(3600, 400LL * 86400);
      data.reviews.push_back(std::move(r));
    }
  }

  // Warehouse stock: special skus hold none; regular ones always keep something in wh-central.
  data.warehouse_qty.resize(kSeedProductCount);
  for (int i = 0; i < kSeedProductCount; ++i) {
    auto& q = data.warehouse_qty[static_cast<size_t>(i)];
    if (IsShelfOnlySkuIndex(i) || IsOutOfStockSkuIndex(i)) {
      q = {0, 0, 0};
      continue;
    }
    Rng rng(MixSeed(kSeed, kWarehouse, static_cast<uint64_t>(i)));
    q[0] = rng.Chance(20) ? 0 : static_cast<int>(rng.Range(1, 250));
    q[1] = rng.Chance(20) ? 0 : static_cast<int>(rng.Range(1, 250));
    q[2] = static_cast<int>(rng.Range(1, 250));
  }

  // Shelves: reserve the special skus' slots first, then fill the rest with regular skus, mostly from
  // the shelf's own category so a shelf looks like an aisle.
  struct Reserved {
    int sku_index;
    int qty;
  };
  std::vector<std::vector<std::pair<int, Reserved>>> reserved(kSeedShelfCount);
  for (int m = 0; m < kSeedShelfOnlyCount; ++m) {
    Rng rng(MixSeed(kSeed, kShelf, 100000 + static_cast<uint64_t>(m)));
    reserved[static_cast<size_t>(SpecialShelfNumber(m, kShelfOnlyOffset))].push_back(
        {m % kSpecialSlotModulus, {m * kShelfOnlyModulus + kShelfOnlyRemainder, static_cast<int>(rng.Range(3, 40))}});
  }
  for (int m = 0; m < kSeedOutOfStockCount; ++m) {
    reserved[static_cast<size_t>(SpecialShelfNumber(m, kOutOfStockOffset))].push_back(
        {m % kSpecialSlotModulus, {m * kOutOfStockModulus + kOutOfStockRemainder, 0}});
  }
  std::vector<std::vector<int>> regular_by_category(cats.size());
  std::vector<int> regular;
  for (int i = 0; i < kSeedProductCount; ++i) {
    if (IsShelfOnlySkuIndex(i) || IsOutOfStockSkuIndex(i)) continue;
    regular.push_back(i);
    regular_by_category[static_cast<size_t>(i % kSeedCategoryCount)].push_back(i);
  }
  data.shelves.reserve(kSeedShelfCount);
  for (int n = 0; n < kSeedShelfCount; ++n) {
    Rng rng(MixSeed(kSeed, kShelf, static_cast<uint64_t>(n)));
    SeedShelf shelf;
    shelf.shelf_id = SeedShelfIdByNumber(n);
    shelf.store_id = SeedStoreId(n / kSeedShelvesPerStore + 1);
    int shelf_in_store = n % kSeedShelvesPerStore + 1;
    int slot_count = shelf_in_store == 1 ? kSeedMaxSlots : static_cast<int>(rng.Range(kSeedMinSlots, kSeedMaxSlots));
    const auto& aisle = regular_by_category[static_cast<size_t>(n % kSeedCategoryCount)];
    for (int s = 0; s < slot_count; ++s) {
      SeedSlot slot;
      slot.slot = s;
      slot.low_threshold = static_cast<int>(rng.Range(2, 5));
      auto it = std::find_if(reserved[static_cast<size_t>(n)].begin(), reserved[static_cast<size_t>(n)].end(),
                             [&](const auto& r) { return r.first == s; });
      if (it != reserved[static_cast<size_t>(n)].end()) {
        slot.sku = SeedSku(it->second.sku_index);
        slot.qty = it->second.qty;
      } else {
        slot.sku = SeedSku(rng.Chance(80) ? Pick(rng, aisle) : Pick(rng, regular));
        slot.qty = rng.Chance(10) ? 0 : static_cast<int>(rng.Range(1, 40));
      }
      shelf.slots.push_back(std::move(slot));
    }
    data.shelves.push_back(std::move(shelf));
  }

  // Promotions for about 30% of products; ends_at at the end of a day in kSeedPromotionYearUnix's year,
  // far enough ahead that demo promotions stay current.
  static constexpr int kDiscounts[] = {5, 10, 15, 20, 25, 30, 40};
  for (int i = 0; i < kSeedProductCount; ++i) {
    Rng rng(MixSeed(kSeed, kPromotions, static_cast<uint64_t>(i)));
    if (!rng.Chance(30)) continue;
    int count = rng.Chance(35) ? 2 : 1;
    int first_label = static_cast<int>(rng.Range(0, static_cast<int64_t>(PromotionLabels().size()) - 1));
    for (int k = 0; k < count; ++k) {
      SeedPromotion promo;
      int pct = kDiscounts[rng.Range(0, 6)];
      promo.id = "promo-" + std::to_string(kSeedFirstSkuNumber + i) + "-" + std::to_string(k + 1);
      promo.sku = SeedSku(i);
      promo.label = std::string(PromotionLabels()[static_cast<size_t>(first_label + k) % PromotionLabels().size()]) +
                    " -" + std::to_string(pct) + "%";
      promo.discount_pct = pct;
      promo.ends_at = FormatRfc3339(kSeedPromotionYearUnix + rng.Range(0, 364) * 86400 + 86399);
      data.promotions.push_back(std::move(promo));
    }
  }

  // "Customers also bought": mostly other categories.
  data.recommendations.resize(kSeedProductCount);
  for (int i = 0; i < kSeedProductCount; ++i) {
    Rng rng(MixSeed(kSeed, kRecommendations, static_cast<uint64_t>(i)));
    int count = static_cast<int>(rng.Range(4, 8));
    std::vector<int> chosen;
    while (static_cast<int>(chosen.size()) < count) {
      bool same_category = rng.Chance(20);
      int other = same_category ? Pick(rng, by_category[static_cast<size_t>(i % kSeedCategoryCount)])
                                : static_cast<int>(rng.Range(0, kSeedProductCount - 1));
      if (other == i || std::find(chosen.begin(), chosen.end(), other) != chosen.end()) continue;
      if (!same_category && other % kSeedCategoryCount == i % kSeedCategoryCount) continue;
      chosen.push_back(other);
    }
    for (int other : chosen) data.recommendations[static_cast<size_t>(i)].push_back(SeedSku(other));
  }
  return data;
}

}  // namespace bff
