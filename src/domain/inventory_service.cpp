// Inventory service: stock per sku, shelves, and shelf-sensor readings written with group commit.
#include <algorithm>
#include <set>

#include "common/log.h"
#include "domain/http_util.h"
#include "domain/services.h"
#include "security/internal_credential.h"

namespace bff::domain {
namespace {

constexpr double kMinTempC = -100.0;
constexpr double kMaxTempC = 200.0;

Status FieldError(std::string_view field, std::string_view what) {
  return InvalidArgument(std::string(field) + ": " + std::string(what));
}

}  // namespace

StatusOr<std::shared_ptr<InventoryService>> InventoryService::Load(std::shared_ptr<Db> db, Scheduler& scheduler,
                                                                   const CatalogService& catalog) {
  std::shared_ptr<InventoryService> svc(new InventoryService(std::move(db), scheduler, catalog));
  std::lock_guard<std::mutex> lock(svc->db_->mutex());
  Query q = svc->db_->Prepare("SELECT shelf_id, slot_count FROM shelves");
  while (q.Step()) svc->slot_counts_[q.Text(0)] = static_cast<int>(q.Int(1));
  if (!q.status().ok()) return q.status();
  return svc;
}

void InventoryService::Register(Router& router) {
  router.Add("GET", "/inventory/v1/shelves", [this](Call& c) { return ListShelves(c); });
  router.Add("GET", "/inventory/v1/shelves/{shelf_id}", [this](Call& c) { return GetShelf(c); });
  router.Add("GET", "/inventory/v1/stock/{sku}", [this](Call& c) { return GetStock(c); });
  router.Add("POST", "/inventory/v1/shelf-readings", [this](Call& c) { return PostReading(c); });
}

Reply InventoryService::ListShelves(Call& call) {
  auto limit = ParseLimit(call.req, kDefaultPageSize, kMaxPageSize);
  if (!limit.ok()) return ErrorResponse(limit.status());
  auto after = DecodeCursor(call.req.QueryParam("cursor"));
  if (!after.ok()) return ErrorResponse(after.status());
  nlohmann::json shelves = nlohmann::json::array();
  bool more = false;
  {
    std::lock_guard<std::mutex> lock(db_->mutex());
    Query q = db_->Prepare(
        "SELECT shelf_id, store_id, slot_count FROM shelves WHERE shelf_id > ?1 ORDER BY shelf_id LIMIT ?2");
    q.Bind(1, *after).Bind(2, *limit + 1);
    while (q.Step()) {
      if (static_cast<int>(shelves.size()) == *limit) {
        more = true;
        break;
      }
      shelves.push_back({{"shelf_id", q.Text(0)}, {"store_id", q.Text(1)}, {"slot_count", q.Int(2)}});
    }
    if (!q.status().ok()) return ErrorResponse(q.status());
  }
  nlohmann::json body = {{"shelves", shelves}, {"next_cursor", nullptr}};
  if (more) body["next_cursor"] = EncodeCursor(shelves.back()["shelf_id"].get<std::string>());
  return JsonResponse(200, body);
}

Reply InventoryService::GetShelf(Call& call) {
  const std::string& shelf_id = call.params[0];
  if (slot_counts_.find(shelf_id) == slot_counts_.end()) {
    return ErrorResponse(404, "not_found", "unknown shelf " + shelf_id);
  }
  nlohmann::json body;
  std::lock_guard<std::mutex> lock(db_->mutex());
  {
    Query q = db_->Prepare("SELECT store_id, version FROM shelves WHERE shelf_id = ?1");
    q.Bind(1, shelf_id);
    if (!q.Step()) return ErrorResponse(q.status().ok() ? NotFound("unknown shelf " + shelf_id) : q.status());
    body["shelf_id"] = shelf_id;
    body["store_id"] = q.Text(0);
    body["version"] = q.Int(1);
  }
  nlohmann::json slots = nlohmann::json::array();
  Query q = db_->Prepare("SELECT slot, sku, qty, low_threshold FROM shelf_slots WHERE shelf_id = ?1 ORDER BY slot");
  q.Bind(1, shelf_id);
  while (q.Step()) {
    slots.push_back({{"slot", q.Int(0)}, {"sku", q.Text(1)}, {"qty", q.Int(2)}, {"low_threshold", q.Int(3)}});
  }
  if (!q.status().ok()) return ErrorResponse(q.status());
  body["slots"] = std::move(slots);
  return JsonResponse(200, body);
}

Reply InventoryService::GetStock(Call& call) {
  const std::string& sku = call.params[0];
  if (catalog_.Find(sku) == nullptr) return ErrorResponse(404, "not_found", "unknown sku " + sku);
  nlohmann::json body;
  int64_t available = 0;
  std::lock_guard<std::mutex> lock(db_->mutex());
  body["sku"] = sku;
  {
    Query q = db_->Prepare("SELECT version, updated_at FROM sku_stock WHERE sku = ?1");
    q.Bind(1, sku);
    if (!q.Step()) return ErrorResponse(q.status().ok() ? NotFound("unknown sku " + sku) : q.status());
    body["version"] = q.Int(0);
    body["updated_at"] = q.Text(1);
  }
  nlohmann::json warehouses = nlohmann::json::array();
  {
    Query q = db_->Prepare(
        "SELECT w.id, s.qty FROM warehouse_stock s JOIN warehouses w ON w.id = s.warehouse_id "
        "WHERE s.sku = ?1 ORDER BY w.ordinal");
    q.Bind(1, sku);
    while (q.Step()) {
      warehouses.push_back({{"id", q.Text(0)}, {"qty", q.Int(1)}});
      available += q.Int(1);
    }
    if (!q.status().ok()) return ErrorResponse(q.status());
  }
  nlohmann::json shelves = nlohmann::json::array();
  {
    Query q = db_->Prepare("SELECT shelf_id, slot, qty FROM shelf_slots WHERE sku = ?1 ORDER BY shelf_id, slot");
    q.Bind(1, sku);
    while (q.Step()) {
      shelves.push_back({{"shelf_id", q.Text(0)}, {"slot", q.Int(1)}, {"qty", q.Int(2)}});
      available += q.Int(2);
    }
    if (!q.status().ok()) return ErrorResponse(q.status());
  }
  body["available"] = available;
  body["warehouses"] = std::move(warehouses);
  body["shelves"] = std::move(shelves);
  return JsonResponse(200, body);
}

StatusOr<ShelfReading> InventoryService::ParseReading(const nlohmann::json& body) const {
  ShelfReading r;
  auto str = [&](const char* field, std::string* out) -> Status {
    auto it = body.find(field);
    if (it == body.end() || !it->is_string()) return FieldError(field, "required, must match [A-Za-z0-9._-]{1,64}");
    *out = it->get<std::string>();
    return Status::Ok();
  };
  if (Status s = str("device_id", &r.device_id); !s.ok()) return s;
  if (Status s = str("shelf_id", &r.shelf_id); !s.ok()) return s;

  auto seq = body.find("seq");
  if (seq == body.end()) return FieldError("seq", "required");
  auto seq_v = JsonInt(*seq, 0, INT64_MAX);
  if (!seq_v) return FieldError("seq", "must be a non-negative integer");
  r.seq = *seq_v;

  auto ts = body.find("ts");
  if (ts == body.end()) return FieldError("ts", "required");
  auto ts_v = JsonInt(*ts, 0, kMaxTimestamp);
  if (!ts_v) return FieldError("ts", "must be an integer number of unix seconds");
  r.ts = *ts_v;

  if (auto b = body.find("battery_pct"); b != body.end() && !b->is_null()) {
    r.battery_pct = JsonNumber(*b, 0.0, 100.0);
    if (!r.battery_pct) return FieldError("battery_pct", "must be a number from 0 to 100");
  }
  if (auto t = body.find("temp_c"); t != body.end() && !t->is_null()) {
    r.temp_c = JsonNumber(*t, kMinTempC, kMaxTempC);
    if (!r.temp_c) return FieldError("temp_c", "must be a number of degrees Celsius");
  }

  auto readings = body.find("readings");
  if (readings == body.end() || !readings->is_array()) return FieldError("readings", "required, must be an array");
  if (readings->size() > kMaxSlotReadings) {
    return FieldError("readings", "at most " + std::to_string(kMaxSlotReadings) + " entries");
  }
  for (const auto& entry : *readings) {
    if (!entry.is_object()) return FieldError("readings", "entries must be objects {slot, qty}");
    auto slot = entry.find("slot");
    auto qty = entry.find("qty");
    if (slot == entry.end()) return FieldError("readings.slot", "required");
    if (qty == entry.end()) return FieldError("readings.qty", "required");
    // Ranges are Validate()'s; out-of-range integers are kept out of int here.
    auto slot_v = JsonInt(*slot, INT32_MIN, INT32_MAX);
    if (!slot_v) return FieldError("readings.slot", "must be an integer slot number");
    auto qty_v = JsonInt(*qty, 0, kMaxSlotQty);
    if (!qty_v) return FieldError("readings.qty", "must be an integer from 0 to " + std::to_string(kMaxSlotQty));
    r.slots.emplace_back(static_cast<int>(*slot_v), *qty_v);
  }
  return r;
}

StatusOr<InventoryService::Reading> InventoryService::Validate(ShelfReading in) const {
  constexpr char kIdRule[] = "required, must match [A-Za-z0-9._-]{1,64}";
  if (!IsValidId(in.device_id)) return FieldError("device_id", kIdRule);
  if (!IsValidId(in.shelf_id)) return FieldError("shelf_id", kIdRule);
  if (in.seq < 0) return FieldError("seq", "must be a non-negative integer");
  if (in.ts < 0 || in.ts > kMaxTimestamp) return FieldError("ts", "must be an integer number of unix seconds");
  if (in.battery_pct && !(*in.battery_pct >= 0.0 && *in.battery_pct <= 100.0)) {
    return FieldError("battery_pct", "must be a number from 0 to 100");
  }
  if (in.temp_c && !(*in.temp_c >= kMinTempC && *in.temp_c <= kMaxTempC)) {
    return FieldError("temp_c", "must be a number of degrees Celsius");
  }
  if (in.slots.size() > kMaxSlotReadings) {
    return FieldError("readings", "at most " + std::to_string(kMaxSlotReadings) + " entries");
  }
  auto shelf = slot_counts_.find(in.shelf_id);
  if (shelf == slot_counts_.end()) return NotFound("unknown shelf " + in.shelf_id);
  const int slot_count = shelf->second;

  Reading r;
  r.readings_json.reserve(2 + in.slots.size() * 20);
  r.readings_json += '[';
  for (size_t i = 0; i < in.slots.size(); ++i) {
    const auto [slot, qty] = in.slots[i];
    if (slot < 0 || slot >= slot_count) {
      return FieldError("readings.slot",
                        "must be an integer from 0 to " + std::to_string(slot_count - 1) + " for shelf " + in.shelf_id);
    }
    if (qty < 0 || qty > kMaxSlotQty) {
      return FieldError("readings.qty", "must be an integer from 0 to " + std::to_string(kMaxSlotQty));
    }
    for (size_t j = 0; j < i; ++j) {
      if (in.slots[j].first == slot) return FieldError("readings.slot", "slot " + std::to_string(slot) + " appears twice");
    }
    if (i > 0) r.readings_json += ',';
    r.readings_json += "{\"slot\":" + std::to_string(slot) + ",\"qty\":" + std::to_string(qty) + "}";
  }
  r.readings_json += ']';
  r.in = std::move(in);
  return r;
}

Reply InventoryService::PostReading(Call& call) {
  auto body = ParseJsonObjectBody(call.req);
  if (!body.ok()) return ErrorResponse(body.status());
  auto parsed = ParseReading(*body);
  if (!parsed.ok()) return ErrorResponse(parsed.status());
  auto reading = Validate(std::move(*parsed));
  if (!reading.ok()) return ErrorResponse(reading.status());
  Enqueue(std::move(*reading), TimePoint::max(), [done = std::move(call.done)](StatusOr<ShelfReadingAccepted> a) {
    if (!a.ok()) return done(ErrorResponse(a.status()));
    done(JsonResponse(202, ShelfReadingAcceptedToJson(*a)));
  });
  return std::nullopt;
}

void InventoryService::Submit(ShelfReading in, TimePoint deadline, ShelfReadingCallback done) {
  auto reading = Validate(std::move(in));
  if (!reading.ok()) {
    scheduler_.Post([done = std::move(done), s = reading.status()] { done(s); });
    return;
  }
  Enqueue(std::move(*reading), deadline, std::move(done));
}

size_t InventoryService::queued_readings() const {
  std::lock_guard<std::mutex> lock(queue_mu_);
  return queue_.size();
}

// Group commit: whoever finds the writer idle starts it; while it commits, new readings queue up and
// go into the next transaction together. A lone reading therefore commits at once, and under load one
// fsync-free commit carries up to kMaxReadingsPerCommit readings.
void InventoryService::Enqueue(Reading reading, TimePoint deadline, ShelfReadingCallback done) {
  bool start = false;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    queue_.push_back(Pending{std::move(reading), deadline, std::move(done)});
    start = !writer_active_;
    writer_active_ = true;
  }
  if (start) scheduler_.Post([self = shared_from_this()] { self->DrainOnce(); });
}

void InventoryService::DrainOnce() {
  std::vector<Pending> batch;
  std::vector<Pending> late;
  const TimePoint now_steady = scheduler_.Now();
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    while (!queue_.empty() && batch.size() < kMaxReadingsPerCommit) {
      // Nobody waits for an answer past its deadline: such a reading is not stored, so the device's
      // retry (it saw no acknowledgement) is the one that counts.
      if (queue_.front().deadline <= now_steady) {
        late.push_back(std::move(queue_.front()));
      } else {
        batch.push_back(std::move(queue_.front()));
      }
      queue_.pop_front();
    }
  }
  for (auto& p : late) p.done(DeadlineExceeded("inventory: the reading waited past its deadline"));
  std::vector<StatusOr<ShelfReadingAccepted>> results;
  results.reserve(batch.size());
  Status batch_status;
  if (!batch.empty()) {
    const std::string now = FormatRfc3339(UnixNow());
    std::lock_guard<std::mutex> lock(db_->mutex());
    Transaction tx(*db_);
    batch_status = tx.status();
    for (size_t i = 0; i < batch.size() && batch_status.ok(); ++i) {
      results.push_back(Apply(batch[i].reading, now));
      if (!results.back().ok()) batch_status = results.back().status();
    }
    if (batch_status.ok()) batch_status = tx.Commit();
  }
  if (!batch_status.ok()) {
    log::Error("domain: shelf readings commit failed", {{"readings", batch.size()}, {"error", batch_status.message()}});
  } else if (!batch.empty()) {
    log::Debug("domain: shelf readings committed", {{"readings", batch.size()}});
  }
  bool again = false;
  {
    std::lock_guard<std::mutex> lock(queue_mu_);
    again = !queue_.empty();
    writer_active_ = again;
  }
  // The next commit starts (on another thread, re-posted so that reads queued on the scheduler run
  // between commits) while this one's answers go out.
  if (again) scheduler_.Post([self = shared_from_this()] { self->DrainOnce(); });
  for (size_t i = 0; i < batch.size(); ++i) {
    if (!batch_status.ok()) {
      batch[i].done(Internal("readings could not be stored"));
    } else {
      batch[i].done(std::move(*results[i]));
    }
  }
}

StatusOr<ShelfReadingAccepted> InventoryService::Apply(const Reading& reading, const std::string& now_rfc3339) {
  const ShelfReading& r = reading.in;
  {
    Query q = db_->Prepare(
        "INSERT INTO shelf_readings(device_id, seq, shelf_id, ts, readings, battery_pct, temp_c, received_unix) "
        "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) ON CONFLICT(device_id, seq) DO NOTHING");
    q.Bind(1, r.device_id).Bind(2, r.seq).Bind(3, r.shelf_id).Bind(4, r.ts).Bind(5, reading.readings_json);
    if (r.battery_pct)
      q.Bind(6, *r.battery_pct);
    else
      q.BindNull(6);
    if (r.temp_c)
      q.Bind(7, *r.temp_c);
    else
      q.BindNull(7);
    if (Status s = q.Bind(8, UnixNow()).Run(); !s.ok()) return s;
  }
  ShelfReadingAccepted out;
  if (db_->Changes() == 0) {
    // Already recorded: answer with the shelf the original reading was for, changing nothing.
    Query q = db_->Prepare(
        "SELECT s.version FROM shelf_readings r JOIN shelves s ON s.shelf_id = r.shelf_id "
        "WHERE r.device_id = ?1 AND r.seq = ?2");
    q.Bind(1, r.device_id).Bind(2, r.seq);
    if (!q.Step()) return q.status().ok() ? Internal("duplicate reading vanished") : q.status();
    out.duplicate = true;
    out.shelf_version = static_cast<uint64_t>(q.Int(0));
    return out;
  }
  std::set<std::string> changed;
  for (const auto& [slot, qty] : r.slots) {
    Query q =
        db_->Prepare("UPDATE shelf_slots SET qty = ?3 WHERE shelf_id = ?1 AND slot = ?2 AND qty <> ?3 RETURNING sku");
    q.Bind(1, r.shelf_id).Bind(2, slot).Bind(3, qty);
    while (q.Step()) changed.insert(q.Text(0));
    if (!q.status().ok()) return q.status();
  }
  // The shelf version moves only when a quantity did, so it works as a validator for stock flags.
  if (!changed.empty()) {
    Query q = db_->Prepare("UPDATE shelves SET version = version + 1 WHERE shelf_id = ?1");
    if (Status s = q.Bind(1, r.shelf_id).Run(); !s.ok()) return s;
  }
  for (const std::string& sku : changed) {
    Query q = db_->Prepare("UPDATE sku_stock SET version = version + 1, updated_at = ?2 WHERE sku = ?1");
    if (Status s = q.Bind(1, sku).Bind(2, now_rfc3339).Run(); !s.ok()) return s;
  }
  Query q = db_->Prepare("SELECT version FROM shelves WHERE shelf_id = ?1");
  q.Bind(1, r.shelf_id);
  if (!q.Step()) return q.status().ok() ? NotFound("unknown shelf " + r.shelf_id) : q.status();
  out.shelf_version = static_cast<uint64_t>(q.Int(0));
  out.changed_skus.assign(changed.begin(), changed.end());
  return out;
}

}  // namespace bff::domain
